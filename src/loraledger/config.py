"""Node and CLI settings.

Values come, highest priority first, from: explicit arguments (CLI flags), environment
variables prefixed ``LORALEDGER_`` (e.g. ``LORALEDGER_RPC_URL``), a TOML file
(``$LORALEDGER_CONFIG`` or ``./loraledger.toml``), and the defaults below.

Secrets (private keys, keystore passwords) are ``SecretStr`` so that they never appear
in reprs, logs or error messages.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from .errors import ConfigError

BPS_DENOMINATOR = 10_000


def find_project_root(start: Path | None = None) -> Path:
    """The directory holding ``foundry.toml`` and ``contracts/``.

    Searched upwards from ``start`` (default: the working directory), then next to the
    installed package (an editable install from a checkout). The contracts, the solc
    wrapper and the Foundry binaries live there.
    """
    candidates = []
    here = (start or Path.cwd()).resolve()
    candidates.extend([here, *here.parents])
    package_dir = Path(__file__).resolve().parent
    candidates.extend(package_dir.parents)
    for directory in candidates:
        if (directory / "foundry.toml").is_file() and (directory / "contracts" / "src").is_dir():
            return directory
    raise ConfigError(
        "cannot find the loraledger project root (a directory with foundry.toml and contracts/src); "
        "run from a loraledger checkout or set LORALEDGER_PROJECT_ROOT"
    )


def _toml_path() -> Path:
    return Path(os.environ.get("LORALEDGER_CONFIG", "loraledger.toml"))


class Settings(BaseSettings):
    """Everything a node or CLI invocation needs to know about its environment."""

    model_config = SettingsConfigDict(
        env_prefix="LORALEDGER_",
        extra="ignore",
        validate_default=True,
    )

    #: Where the node keeps its state: epoch files, devnet state, caches.
    data_dir: Path = Path(".loraledger")
    #: Where ``deployments/<chainId>.json`` files are written and read.
    deployments_dir: Path = Path("deployments")
    #: The checkout with foundry.toml, contracts/ and node_modules/ (found automatically).
    project_root: Path | None = None

    #: SQLAlchemy URL of the ledger database (default: SQLite in data_dir). PostgreSQL:
    #: ``postgresql+psycopg://user:pass@host/db``.
    database_url: str | None = None
    #: Public base URL of this node's API, written into epochs' data URI when set.
    public_url: str | None = None
    #: Close an epoch every ``epoch_seconds`` or ``epoch_records`` records, whichever first.
    epoch_seconds: float = Field(default=3600.0, gt=0)
    epoch_records: int = Field(default=10_000, ge=1)
    #: An epoch whose records take this many bytes (canonical JSON) or more is published as
    #: content-addressed chunks of ``epoch_chunk_bytes`` listed in a manifest, not as one file.
    epoch_file_max_bytes: int = Field(default=100_000_000, ge=1)
    #: Bytes of records per chunk of such an epoch (a chunk closes at the first record past it).
    epoch_chunk_bytes: int = Field(default=32 * 1024 * 1024, ge=1)
    #: Bearer token for admin API endpoints (appending records, closing epochs). Unset: those endpoints are off.
    admin_token: SecretStr | None = None
    #: Where `loraledger node run` listens.
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8787, ge=1, le=65535)

    #: JSON-RPC endpoint of the EVM chain (anvil locally).
    rpc_url: str = "http://127.0.0.1:8545"
    #: Expected chain id; when set, a node on another chain is refused.
    chain_id: int | None = None
    #: Blocks to wait after a transaction's receipt before treating it as final.
    confirmations: int = Field(default=1, ge=1)
    #: Seconds to wait for a transaction receipt.
    tx_timeout: float = Field(default=120.0, gt=0)

    #: The operator's private key (hex). Prefer a keystore for real keys.
    operator_key: SecretStr | None = None
    #: An encrypted JSON keystore (EIP-2335/Web3 secret storage) for the operator.
    operator_keystore: Path | None = None
    #: Password of ``operator_keystore``.
    operator_keystore_password: SecretStr | None = None

    #: A solc executable to use instead of the project's ``scripts/solc`` wrapper.
    solc: Path | None = None

    #: Serving (``node run --base DIR``): the base model directory to serve, adapters in device
    #: slots and in host memory (LRU bounds, like vLLM's max_loras / max_cpu_loras), the
    #: highest LoRA rank served, and the default price in wei of OPEN per 1,000 tokens.
    serve_base: Path | None = None
    max_loras: int = Field(default=8, ge=1, le=1024)
    max_cpu_loras: int = Field(default=64, ge=1)
    max_lora_rank: int = Field(default=64, ge=1, le=1024)
    price_input_per_1k: int = Field(default=10**15, ge=0)
    price_output_per_1k: int = Field(default=2 * 10**15, ge=0)
    #: Generate on another OpenAI-compatible server with LoRA (vLLM --enable-lora, LoRAX, another
    #: node): its URL, its API key, and its name for the base model (default: the base directory's name).
    #: The node still resolves models, renders prompts, prices and records every answer.
    upstream_url: str | None = None
    upstream_api_key: SecretStr | None = None
    upstream_model: str | None = None
    #: Serve without API keys, every answer paid by this address (local use only; off by default).
    open_payer: str | None = None
    #: Answers are paid from payers' deposits in the PaymentVault: a request whose payer cannot cover
    #: its prompt and max_tokens at the model's price is refused (402), each fee is debited when its
    #: answer is recorded, and each epoch's takings are released from the vault to fund it. Off: nobody
    #: is charged on chain and the operator funds the epochs.
    payer_deposits: bool = True
    #: Seconds between reads of the vault's Deposited events (deposits count after ``confirmations``).
    deposit_poll_seconds: float = Field(default=2.0, gt=0)

    #: Log lines of `node run`: ``json`` (one object per line, with the request id of the HTTP
    #: request it belongs to) or ``text``; and the lowest level written.
    log_format: Literal["json", "text"] = "json"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: On SIGTERM, seconds `node run` lets requests in flight finish before it cancels them (each
    #: cancelled answer is still recorded and paid for what was generated).
    shutdown_grace_seconds: float = Field(default=30.0, ge=0)
    #: Days the node keeps the texts of prompts and answers (attribution reads them); 0 keeps them.
    inference_text_days: int = Field(default=30, ge=0)
    #: Models with a ``model`` label of their own in ``GET /metrics`` (the base included); the
    #: rest are counted under ``other``, so the number of series stays bounded.
    metrics_models: int = Field(default=20, ge=1, le=1000)

    #: Default fee split (basis points) used when deploying AttributionLedger.
    contributors_bps: int = Field(default=7_000, ge=0, le=BPS_DENOMINATOR)
    developer_bps: int = Field(default=2_000, ge=0, le=BPS_DENOMINATOR)
    operator_bps: int = Field(default=1_000, ge=0, le=BPS_DENOMINATOR)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_toml_path())
        return (init_settings, env_settings, toml)

    @field_validator("rpc_url")
    @classmethod
    def _rpc_url_is_http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://", "ws://", "wss://")):
            raise ValueError(f"rpc_url must start with http://, https://, ws:// or wss://, got {value!r}")
        return value

    @model_validator(mode="after")
    def _cpu_tier_holds_the_device_tier(self) -> Settings:
        if self.max_cpu_loras < self.max_loras:
            raise ValueError(f"max_cpu_loras ({self.max_cpu_loras}) must be at least max_loras ({self.max_loras}): "
                             "an adapter in a device slot is also kept in host memory")
        return self

    @model_validator(mode="after")
    def _fee_split_sums_to_whole(self) -> Settings:
        total = self.contributors_bps + self.developer_bps + self.operator_bps
        if total != BPS_DENOMINATOR:
            raise ValueError(
                f"fee split must sum to {BPS_DENOMINATOR} basis points, got "
                f"{self.contributors_bps}+{self.developer_bps}+{self.operator_bps}={total}"
            )
        return self

    @property
    def root(self) -> Path:
        """The project root (explicit setting or found automatically)."""
        return self.project_root.resolve() if self.project_root else find_project_root()

    @property
    def solc_binary(self) -> Path:
        """The solc executable: the ``solc`` setting, else the project's wrapper (which itself
        prefers a native solc from ``$LORALEDGER_SOLC`` or PATH, then solc-js)."""
        return self.solc if self.solc else self.root / "scripts" / "solc"

    @property
    def ledger_url(self) -> str:
        """The ledger database URL (``database_url``, else ``<data_dir>/ledger.sqlite``)."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'ledger.sqlite').resolve()}"

    @property
    def epochs_dir(self) -> Path:
        """Where sealed epoch files are written: ``<data_dir>/epochs``."""
        return self.data_dir / "epochs"

    def deployment_file(self, chain_id: int) -> Path:
        return self.deployments_dir / f"{chain_id}.json"


def _check_toml(path: Path) -> None:
    """A config file that is named but missing, not TOML, or has a key no setting has is refused
    (a misspelt key would otherwise be ignored without a word)."""
    import difflib
    import tomllib

    explicit = "LORALEDGER_CONFIG" in os.environ
    if not path.is_file():
        if explicit:
            raise ConfigError(f"config file {path} (LORALEDGER_CONFIG / --config) does not exist")
        return
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(data) - set(Settings.model_fields))
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, Settings.model_fields, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(f"config file {path} has unknown keys: {', '.join(hints)}; "
                          "`loraledger config defaults` lists every key")


def setting_docs() -> dict[str, str]:
    """Each setting's documentation: the ``#:`` comment lines above its field in this module (a
    field right under another, with no comment of its own, shares that field's)."""
    import inspect

    docs: dict[str, str] = {}
    comment: list[str] = []
    last = ""
    for line in inspect.getsource(Settings).splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            comment.append(stripped[2:].strip())
            continue
        name, colon, _ = stripped.partition(":")
        if colon and name in Settings.model_fields:
            last = " ".join(comment) if comment else last
            docs[name], comment = last, []
    return docs


def defaults_toml() -> str:
    """A ``loraledger.toml`` with every setting at its default, each under its documentation
    (unset settings commented out): what ``loraledger config defaults`` prints."""
    import json
    import textwrap

    lines = ["# loraledger.toml: every setting with its default. Environment variables LORALEDGER_<KEY>",
             "# override this file, and command-line options override both. Unset settings are commented out.",
             ""]
    docs = setting_docs()
    previous = None
    for name, field in Settings.model_fields.items():
        doc = docs.get(name, "")
        if doc != previous:  # a group of settings under one comment: the comment once
            if previous is not None:
                lines.append("")
            lines.extend(f"# {part}" for part in textwrap.wrap(doc, 96))
        previous = doc
        default = field.default
        if default is None:
            lines.append(f"# {name} =")
        else:
            if isinstance(default, Path):
                default = str(default)
            value = json.dumps(default) if not isinstance(default, bool) else str(default).lower()
            lines.append(f"{name} = {value}")
    return "\n".join(lines) + "\n"


def load_settings(**overrides: Any) -> Settings:
    """Build ``Settings`` from env/TOML plus explicit overrides (None values are ignored).

    Invalid settings (and a config file with unknown keys) become a ``ConfigError`` naming the field.
    """
    from pydantic import ValidationError

    _check_toml(_toml_path())
    clean = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**clean)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None
