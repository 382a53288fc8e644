"""Training hyper-parameters (pure core): validated once, recorded whole in provenance.

Every field here goes into ``provenance.json`` and into the checkpoint fingerprint, so a
run resumed with other settings is refused instead of silently mixing two runs.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import InputError

__all__ = ["ADAPTER_NAME_RE", "TrainConfig", "validate_adapter_name"]

#: Adapter names: lower-case letters, digits, ``.``, ``_`` and ``-``, starting with a letter
#: or digit, at most 64 characters. They become directory names and on-chain ids, so
#: nothing that could climb out of a directory (``..``, ``/``) gets through.
ADAPTER_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def validate_adapter_name(name: str) -> str:
    """``name`` if it is a valid adapter name, else ``InputError`` saying what is allowed."""
    if not isinstance(name, str) or not ADAPTER_NAME_RE.fullmatch(name) or ".." in name:
        raise InputError(
            f"invalid adapter name {name!r}: use 1-64 lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


class TrainConfig(BaseModel):
    """LoRA fine-tuning settings. Build with :meth:`parse` to get ``InputError`` on bad values."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: LoRA rank r (the adapter's inner dimension).
    rank: int = Field(8, ge=1, le=4096)
    #: LoRA alpha; the update is scaled by alpha / rank.
    alpha: float = Field(16.0, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    #: Module names to adapt; ``None``: the default for the model family.
    target_modules: tuple[str, ...] | None = None
    learning_rate: float = Field(2e-4, gt=0, le=1)
    #: ``linear``: warm up, then decay linearly to 0; ``constant``: warm up, then hold.
    lr_schedule: Literal["linear", "constant"] = "linear"
    warmup_steps: int = Field(0, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    epochs: int = Field(1, ge=1, le=1000)
    #: Stop after this many optimiser steps (``None``: run all epochs).
    max_steps: int | None = Field(None, ge=1)
    batch_size: int = Field(4, ge=1, le=4096)
    gradient_accumulation: int = Field(1, ge=1, le=1024)
    #: Longest example in tokens; longer ones are cut (prompt first kept, so the answer may be lost).
    max_length: int = Field(512, ge=8, le=131072)
    seed: int = Field(0, ge=0, le=2**32 - 1)
    #: Share of rows held out for validation, chosen by row hash (so a row's side never changes).
    val_fraction: float = Field(0.1, ge=0, le=0.5)
    #: Save a checkpoint every K optimiser steps (0: only at the end).
    checkpoint_every: int = Field(0, ge=0)
    #: ``4bit``: QLoRA (needs a CUDA GPU and bitsandbytes).
    quantize: Literal["4bit"] | None = None
    max_grad_norm: float | None = Field(1.0, gt=0)

    @field_validator("target_modules")
    @classmethod
    def _targets(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return None
        names = tuple(sorted({v.strip() for v in value if v.strip()}))
        if not names:
            raise ValueError("at least one target module is needed")
        for name in names:
            if not re.fullmatch(r"[A-Za-z0-9_.]+", name):
                raise ValueError(f"invalid module name {name!r}")
        return names

    @classmethod
    def parse(cls, values: dict[str, Any]) -> TrainConfig:
        """Validate ``values``; ``InputError`` naming every bad field (``rank: must be >= 1``)."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = []
            for error in exc.errors():
                field = ".".join(str(p) for p in error["loc"]) or "config"
                message = error["msg"]
                if error["type"] == "greater_than_equal":
                    message = f"must be >= {error['ctx']['ge']}"
                elif error["type"] == "greater_than":
                    message = f"must be > {error['ctx']['gt']}"
                elif error["type"] == "extra_forbidden":
                    message = "unknown setting"
                problems.append(f"{field}: {message}")
            raise InputError("invalid training settings: " + "; ".join(problems),
                             errors=[{"field": p.split(":")[0], "message": p} for p in problems]) from None

    def with_targets(self, targets: list[str] | tuple[str, ...]) -> TrainConfig:
        return self.model_copy(update={"target_modules": tuple(sorted(set(targets)))})

    def to_json(self) -> dict[str, Any]:
        """camelCase dict, as written to provenance.json."""
        data = self.model_dump(mode="json")
        return {_camel(k): (list(v) if isinstance(v, tuple) else v) for k, v in data.items()}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
