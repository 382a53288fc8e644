"""The multi-LoRA delta of one layer for a batch whose rows use different adapters (torch).

Two implementations of ``y += delta`` with ``delta[i] = (x[i] @ A[slot[i]].T) @ B[slot[i]].T``,
selectable by name (``LORA_OPS``) and compared by ``scripts/bench_lora_ops.py``:

* ``group`` (a CPU batch of few adapters): rows sharing a slot form one group (the engine orders the
  rows by slot, so a group is a slice of the batch and costs no copy); per group two small
  matmuls at that adapter's own rank. Work and memory are those of the rows that have an
  adapter; the base rows (slot 0) cost nothing.
* ``gather`` (CUDA, and a CPU batch of several adapters): Punica's "gather" baseline: index A and
  B by each row's slot (``[B, r, in]`` and ``[B, out, r]``, ``r`` the batch's largest rank: a
  copy of the weights per row), then two ``bmm``. One kernel pair for the whole batch, but
  memory grows as rows × rank × (in + out), and base rows are computed (as zeros) too. On a
  GPU the launches per group of ``group`` cost more than the copies.

Neither ever builds a mask over the whole batch per adapter (what PEFT's mixed-batch
forward does: every adapter's matmuls over every row, masked).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

__all__ = ["LORA_OPS", "RowGroups", "lora_delta_gather", "lora_delta_group"]


@dataclass(frozen=True)
class RowGroups:
    """A batch's rows grouped by slot, computed once per forward and shared by every layer.

    ``slots`` is the per-row slot (``[B]`` long, on the model's device); ``groups`` holds
    ``(slot, start, end)`` over rows in slot order, slot 0 (the base) left out; ``order`` is
    ``None`` when the rows are already sorted by slot (each group is then a slice of the batch),
    else the permutation that sorts them.
    """

    slots: torch.Tensor
    groups: tuple[tuple[int, int, int], ...]
    order: torch.Tensor | None
    #: Per group, the row indices when ``order`` is set (``index_select`` / ``index_add_``).
    indices: tuple[torch.Tensor, ...]

    @classmethod
    def of(cls, row_slots: Sequence[int], device: torch.device | str) -> RowGroups:
        rows = list(row_slots)
        slots = torch.tensor(rows, dtype=torch.long, device=device)
        is_sorted = all(a <= b for a, b in zip(rows, rows[1:]))
        order_list = list(range(len(rows))) if is_sorted else sorted(range(len(rows)), key=rows.__getitem__)
        groups: list[tuple[int, int, int]] = []
        start = 0
        while start < len(order_list):
            slot = rows[order_list[start]]
            end = start
            while end < len(order_list) and rows[order_list[end]] == slot:
                end += 1
            if slot != 0:
                groups.append((slot, start, end))
            start = end
        if is_sorted:
            return cls(slots, tuple(groups), None, ())
        order = torch.tensor(order_list, dtype=torch.long, device=device)
        return cls(slots, tuple(groups), order, tuple(order[s:e] for _, s, e in groups))

    @property
    def adapted(self) -> bool:
        """Whether any row uses an adapter (if not, the layers skip the delta altogether)."""
        return bool(self.groups)


def lora_delta_group(y: torch.Tensor, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, ranks: Sequence[int],
                     rows: RowGroups) -> torch.Tensor:
    """``y`` (``[B, ..., out]``) plus each adapted row's delta, by slot groups; ``a`` is ``[S, r_max,
    in]``, ``b`` ``[S, out, r_max]``, ``ranks[s]`` the rank loaded in slot ``s`` (0: this layer is not
    adapted by it, so the group is skipped)."""
    for i, (slot, start, end) in enumerate(rows.groups):
        rank = ranks[slot]
        if rank == 0:
            continue
        # Slicing to the adapter's own rank: a rank-4 adapter in an r_max-64 engine does rank-4 work.
        a_s, b_s = a[slot, :rank], b[slot, :, :rank]
        if rows.order is None:
            y[start:end] += (x[start:end] @ a_s.T) @ b_s.T
        else:
            index = rows.indices[i]
            y.index_add_(0, index, (x.index_select(0, index) @ a_s.T) @ b_s.T)
    return y


def lora_delta_gather(y: torch.Tensor, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, ranks: Sequence[int],
                      rows: RowGroups) -> torch.Tensor:
    """The same sum by gathering each row's A and B (``[B, r, in]``, ``[B, out, r]``) and two
    batched matmuls, ``r`` the largest rank among the batch's slots (a node whose maximum rank is
    64 serving rank-8 adapters does rank-8 work); smaller ranks' zero padding and base rows
    contribute exact zeros."""
    rank = max((ranks[slot] for slot, _, _ in rows.groups), default=0)
    if rank == 0:
        return y  # no adapter in the batch adapts this layer
    batch = x.shape[0]
    a_rows = a[:, :rank].index_select(0, rows.slots)  # [B, r, in]
    b_rows = b[:, :, :rank].index_select(0, rows.slots)  # [B, out, r]
    x3 = x.reshape(batch, -1, x.shape[-1])
    delta = torch.bmm(torch.bmm(x3, a_rows.transpose(1, 2)), b_rows.transpose(1, 2))
    y += delta.reshape(y.shape)
    return y


LoraOp = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, Sequence[int], RowGroups], torch.Tensor]

#: The selectable implementations (``LoraSlots(op=...)``).
LORA_OPS: dict[str, LoraOp] = {"group": lora_delta_group, "gather": lora_delta_gather}
