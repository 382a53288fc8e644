"""The running sequences' KV cache: one persistent buffer per layer, rows right-aligned (torch).

Every running sequence owns a row of :class:`BatchKV`; per layer the keys (and values) of all
rows live in one tensor ``[rows, kv_heads, columns, head_dim]``. Row ``i`` holds its
``lengths[i]`` tokens in the columns ``[end - lengths[i], end)``: the rows are right-aligned on
the shared column ``end``, so a decode step, which gives every row exactly one new token, writes
ONE column for the whole batch (``buffer[:, :, end] = new``) and attends over the view
``buffer[:rows, :, start:end + 1]`` (``start = end - max(lengths)``) with a mask that hides each
row's left padding. Nothing is padded, stacked or cut per step; memory is copied only when a row
joins (its prefill cache is copied in), when a row leaves (the last row is moved into its place,
so the live rows stay ``0..n-1``), and when the buffer is full (it is reallocated with room to
grow, amortised like a list).

Padding columns hold zeros or the finite keys and values of earlier rows, never NaN: the mask
gives them exactly zero attention weight, and 0 × a finite value is 0, so a row's logits are
those of the row run alone up to floating-point summation order.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

__all__ = ["BatchKV", "SequenceKV", "kv_length"]

#: One sequence's cache: per layer (keys, values), each ``[kv_heads, length, head_dim]``.
SequenceKV = tuple[tuple[torch.Tensor, torch.Tensor], ...]

#: Columns (and rows) a reallocated buffer keeps free beyond what it needs now, at least.
_MIN_ROOM = 64


def kv_length(kv: SequenceKV) -> int:
    """Tokens held in a sequence's cache."""
    return int(kv[0][0].shape[-2])


@functools.cache
def _buffer_layer_class() -> type:
    """The cache-layer class (made on first use: transformers is imported only by serving)."""
    from transformers.cache_utils import DynamicLayer

    class BufferLayer(DynamicLayer):  # a CacheLayerMixin, as transformers' mask code checks
        """One layer of the decode cache handed to the model: ``update`` writes the step's keys
        and values into column ``end`` of the layer's buffers and returns every row's view."""

        is_sliding = False
        is_compileable = False

        def __init__(self, owner: BatchKV, layer: int) -> None:  # no super(): keys/values are views
            self._owner = owner
            self._layer = layer
            self.is_initialized = True

        @property
        def keys(self) -> torch.Tensor:  # type: ignore[override]
            owner = self._owner
            return owner.keys[self._layer][:owner.rows, :, owner.start:owner.end]

        @property
        def values(self) -> torch.Tensor:  # type: ignore[override]
            owner = self._owner
            return owner.values[self._layer][:owner.rows, :, owner.start:owner.end]

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any,
                   **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
            owner = self._owner
            if key_states.shape[-2] != 1 or key_states.shape[0] != owner.rows:
                raise RuntimeError(f"a decode step writes one token per row ({owner.rows} rows), got "
                                   f"{tuple(key_states.shape)}")
            keys, values = owner.keys[self._layer], owner.values[self._layer]
            n, start, end = owner.rows, owner.start, owner.end
            keys[:n, :, end] = key_states[:, :, 0]
            values[:n, :, end] = value_states[:, :, 0]
            return keys[:n, :, start:end + 1], values[:n, :, start:end + 1]

        def get_seq_length(self, *args: Any) -> int:
            return self._owner.width

        def get_mask_sizes(self, *args: Any) -> tuple[int, int]:
            return self._owner.width + 1, 0

    return BufferLayer


class BatchKV:
    """The KV caches of the running sequences, one row each (see the module docstring).

    :meth:`add` copies a prefilled sequence in as a new last row; :meth:`remove` frees a row by
    moving the last row into it; :meth:`decode_cache` is the cache object for one decode forward
    of all rows, after which :meth:`advance` counts the token each row gained.
    """

    def __init__(self, num_layers: int) -> None:
        self.num_layers = num_layers
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        #: Tokens cached per live row (rows ``0..rows-1``).
        self.lengths: list[int] = []
        #: The column after every row's last token (where the next decode step writes).
        self.end = 0

    @property
    def rows(self) -> int:
        return len(self.lengths)

    @property
    def width(self) -> int:
        """Columns the live rows span (the longest row's length)."""
        return max(self.lengths, default=0)

    @property
    def start(self) -> int:
        return self.end - self.width

    def _capacity(self) -> tuple[int, int]:
        if not self.keys:
            return 0, 0
        return int(self.keys[0].shape[0]), int(self.keys[0].shape[2])

    def _reserve(self, rows: int, left: int, right: int, like: torch.Tensor) -> None:
        """Room for ``rows`` rows, ``left`` columns before ``end`` and ``right`` after it: reallocate
        (copying the live block) if the buffers lack any; a new buffer gets room to grow."""
        cap_rows, cap_cols = self._capacity()
        if self.keys and rows <= cap_rows and left <= self.end and self.end + right <= cap_cols:
            return
        new_rows = max(rows, cap_rows, 1)
        if rows > cap_rows:
            new_rows = max(rows, 2 * cap_rows)
        width = self.width
        new_end = max(left, width)
        new_cols = new_end + right + max(_MIN_ROOM, new_end)
        heads, dim = like.shape[0], like.shape[-1]
        keys, values = [], []
        for layer in range(self.num_layers):
            # Zeros, not garbage: padding must never hold NaN (0 × NaN would leak into real rows).
            k = torch.zeros(new_rows, heads, new_cols, dim, dtype=like.dtype, device=like.device)
            v = torch.zeros_like(k)
            if self.keys and self.rows:
                k[:self.rows, :, new_end - width:new_end] = self.keys[layer][:self.rows, :, self.start:self.end]
                v[:self.rows, :, new_end - width:new_end] = self.values[layer][:self.rows, :, self.start:self.end]
            keys.append(k)
            values.append(v)
        self.keys, self.values, self.end = keys, values, new_end

    # Every method that writes the buffers runs in inference mode: buffers made inside a decode
    # forward are inference tensors, which torch lets only inference-mode code update in place.
    @torch.inference_mode()
    def add(self, kv: SequenceKV) -> int:
        """Copy a sequence's cache in as a new last row; its row index."""
        if len(kv) != self.num_layers:
            raise ValueError(f"a cache of {len(kv)} layers for a model of {self.num_layers}")
        length = kv_length(kv)
        self._reserve(self.rows + 1, length, 1, kv[0][0])
        row = self.rows
        for layer, (k, v) in enumerate(kv):
            self.keys[layer][row, :, self.end - length:self.end] = k
            self.values[layer][row, :, self.end - length:self.end] = v
        self.lengths.append(length)
        return row

    @torch.inference_mode()
    def remove(self, row: int) -> int | None:
        """Free ``row``: the last row moves into it. The moved row's old index (``None`` when ``row``
        was the last)."""
        if not 0 <= row < self.rows:
            raise IndexError(f"row {row} of {self.rows}")
        last = self.rows - 1
        if row != last:
            start = self.end - self.lengths[last]
            for layer in range(self.num_layers):
                self.keys[layer][row, :, start:self.end] = self.keys[layer][last, :, start:self.end]
                self.values[layer][row, :, start:self.end] = self.values[layer][last, :, start:self.end]
            self.lengths[row] = self.lengths[last]
        self.lengths.pop()
        if not self.lengths:
            self.clear()  # idle: the memory goes back, and the next row sets the layout
        return last if row != last else None

    @torch.inference_mode()
    def decode_cache(self, config: Any) -> Any:
        """A transformers cache for one decode forward over every live row (one new token each)."""
        from transformers import DynamicCache

        if not self.rows:
            raise RuntimeError("a decode step with no rows")
        self._reserve(self.rows, 0, 1, self.keys[0][0])
        cache = DynamicCache(config=config)
        layer_class = _buffer_layer_class()
        cache.layers = [layer_class(self, layer) for layer in range(self.num_layers)]
        return cache

    def advance(self) -> None:
        """After a decode forward: every row holds one more token."""
        self.end += 1
        self.lengths = [n + 1 for n in self.lengths]

    def sequence(self, row: int) -> SequenceKV:
        """Row ``row``'s cache (views into the buffers, padding stripped)."""
        n = self.lengths[row]
        return tuple((self.keys[layer][row, :, self.end - n:self.end],
                      self.values[layer][row, :, self.end - n:self.end]) for layer in range(self.num_layers))

    def clear(self) -> None:
        """Drop every row and free the buffers."""
        self.keys, self.values, self.lengths, self.end = [], [], [], 0
