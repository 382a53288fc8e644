"""Small torch helpers shared by training and evaluation: padding a batch, memory peaks."""

from __future__ import annotations

import resource
import sys
from collections.abc import Sequence
from typing import Any

import torch

from ..data import IGNORE_INDEX, Example

__all__ = ["collate", "peak_memory_bytes", "reset_peak_memory"]


def collate(examples: Sequence[Example], pad_id: int, device: str | torch.device) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (padding takes no loss)."""
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        ids[row, :n] = torch.tensor(example.input_ids, dtype=torch.long)
        mask[row, :n] = 1
        labels[row, :n] = torch.tensor(example.labels, dtype=torch.long)
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}


def reset_peak_memory(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_bytes(device: str) -> int:
    """Peak GPU memory allocated on CUDA; the process's peak resident set size on CPU."""
    if device.startswith("cuda"):
        return int(torch.cuda.max_memory_allocated(device))
    rss: Any = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss) if sys.platform == "darwin" else int(rss) * 1024  # Linux reports KiB
