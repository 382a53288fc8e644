"""``StandardMerkleTree`` of :mod:`loraledger.crypto.merkle` (``@openzeppelin/merkle-tree``
in Python); the format, values and performance notes are in the package docstring."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from loraledger.errors import InputError, NotFoundError

from .core import (
    MultiProof,
    _bad_inner_node,
    _fill_inner_nodes,
    get_multi_proof,
    get_proof,
    process_multi_proof,
    process_proof,
    render_merkle_tree,
)
from .encoding import (
    _codec_for,
    _describe,
    _hex,
    _LeafCodec,
    _node,
    _nodes,
    standard_leaf_hash,
    to_json_value,
)
from .hashing import Hasher, _bulk, _hasher, _hashers

#: The dump format written by :meth:`StandardMerkleTree.dump` (same as JS).
FORMAT = "standard-v1"

# --------------------------------------------------------------------------------------
# StandardMerkleTree
# --------------------------------------------------------------------------------------


class _dualmethod:
    """A method that is one function on the class and another on instances (like JS
    ``static verify`` next to instance ``verify``)."""

    def __init__(self, on_class: Callable[..., Any], on_instance: Callable[..., Any]) -> None:
        self.on_class = on_class
        self.on_instance = on_instance
        self.__doc__ = on_instance.__doc__

    def __get__(self, obj: Any, objtype: Any = None) -> Callable[..., Any]:
        if obj is None:
            return self.on_class
        return self.on_instance.__get__(obj, objtype)


def _static_verify(
    root: bytes | str, leaf_encoding: Sequence[str], value: Sequence[Any], proof: Sequence[bytes | str]
) -> bool:
    """``StandardMerkleTree.verify(root, leaf_encoding, value, proof)``: whether ``proof``
    proves ``value`` under ``root``."""
    r = _node(root, "root")
    return process_proof(standard_leaf_hash(leaf_encoding, value), proof) == r


def _static_verify_multi_proof(
    root: bytes | str, leaf_encoding: Sequence[str], multiproof: MultiProof | Mapping[str, Any]
) -> bool:
    """``StandardMerkleTree.verify_multi_proof(root, leaf_encoding, multiproof)``."""
    r = _node(root, "root")
    mp = MultiProof.from_json(multiproof)
    h = _hasher()
    codec = _codec_for(leaf_encoding)
    leaves = [
        codec.leaf_hash(codec.normalize_one(v, h, f"multiproof leaves[{i}]"), h)
        for i, v in enumerate(mp.leaves)
    ]
    return process_multi_proof(MultiProof(leaves, mp.proof, mp.proof_flags)) == r


class StandardMerkleTree:
    """OpenZeppelin ``StandardMerkleTree`` (``@openzeppelin/merkle-tree``) in Python.

    Build with :meth:`of` or :meth:`load`. A "leaf" argument is either a value index
    (``int``, position in the input list) or a value (list/tuple of fields), like JS.

    ``StandardMerkleTree.verify(root, leaf_encoding, value, proof)`` and
    ``StandardMerkleTree.verify_multi_proof(root, leaf_encoding, multiproof)`` are the
    static forms; ``tree.verify(leaf, proof)`` and ``tree.verify_multi_proof(mp)`` check
    against this tree's root.
    """

    __slots__ = ("_codec", "_tree", "_values", "_tree_indices", "_lookup")

    def __init__(
        self, codec: _LeafCodec, tree: list[bytes], values: list[tuple], tree_indices: list[int]
    ) -> None:
        # Private: use StandardMerkleTree.of() or StandardMerkleTree.load().
        self._codec = codec
        self._tree = tree
        self._values = values
        self._tree_indices = tree_indices
        self._lookup: dict[bytes, int] | None = None

    # -- construction ---------------------------------------------------------------------

    @classmethod
    @_bulk
    def of(
        cls, values: Iterable[Sequence[Any]], leaf_encoding: Sequence[str], *, sort_leaves: bool = True
    ) -> StandardMerkleTree:
        """Build a tree of ``values`` (lists/tuples of fields typed by ``leaf_encoding``).

        Raises :class:`InputError` for an empty ``values``, a bad leaf encoding, or any
        value that does not fit its type (the message names ``values[i][j]``).
        """
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise InputError(f"values must be a list of leaf values, got {_describe(values)}")
        if sort_leaves is not True and sort_leaves is not False:
            raise InputError(f"sort_leaves must be True or False, got {_describe(sort_leaves)}")
        codec = _codec_for(leaf_encoding)
        values = list(values)
        if not values:
            raise InputError("Expected non-zero number of leaves")
        h, hh = _hashers()
        canon = codec.normalize_all(values, h)
        hashes = codec.hash_all(canon, hh)
        n = len(hashes)
        order = sorted(range(n), key=hashes.__getitem__) if sort_leaves else range(n)
        size = 2 * n - 1
        tree: list[bytes] = [b""] * (n - 1) + [hashes[i] for i in reversed(order)]
        tree_indices = [0] * n
        for leaf_index, value_index in enumerate(order):
            tree_indices[value_index] = size - 1 - leaf_index
        _fill_inner_nodes(tree, n, h)
        return cls(codec, tree, canon, tree_indices)

    @classmethod
    @_bulk
    def load(cls, dump: Mapping[str, Any] | str | bytes) -> StandardMerkleTree:
        """Load a ``standard-v1`` dump (dict, or its JSON text) written by JS or Python.

        Checks the format, leaf encoding, node syntax, shape and that the tree matches the
        values; raises :class:`InputError` naming the first problem.
        """
        if isinstance(dump, (str, bytes, bytearray)):
            try:
                dump = json.loads(dump)
            except ValueError as e:
                raise InputError(f"Merkle tree dump is not valid JSON: {e}") from None
        if not isinstance(dump, Mapping):
            raise InputError(f"Merkle tree dump must be a JSON object, got {_describe(dump)}")
        fmt = dump.get("format")
        if fmt != FORMAT:
            raise InputError(f"Unknown format {fmt!r}: expected {FORMAT!r}", format=fmt)
        if dump.get("leafEncoding") is None:
            raise InputError("Expected leaf encoding: dump has no 'leafEncoding'")
        codec = _codec_for(dump["leafEncoding"], "dump leafEncoding")
        tree = _nodes(dump.get("tree"), "dump tree")
        raw_values = dump.get("values")
        if not isinstance(raw_values, list):
            raise InputError(f"dump values must be a list, got {_describe(raw_values)}")
        n = len(raw_values)
        if n == 0:
            raise InputError("Expected non-zero number of leaves: dump values is empty")
        if len(tree) != 2 * n - 1:
            raise InputError(
                f"dump tree has {len(tree)} nodes but {n} values need {2 * n - 1}"
            )
        tree_indices: list[int] = []
        vals: list[Any] = []
        seen: set[int] = set()
        for i, entry in enumerate(raw_values):
            if not isinstance(entry, Mapping) or "value" not in entry or "treeIndex" not in entry:
                raise InputError(
                    f"dump values[{i}] must be an object with 'value' and 'treeIndex', "
                    f"got {_describe(entry)}"
                )
            ti = entry["treeIndex"]
            if isinstance(ti, bool) or not isinstance(ti, int) or not (n - 1 <= ti <= 2 * n - 2):
                raise InputError(
                    f"dump values[{i}].treeIndex must be a leaf position between {n - 1} and "
                    f"{2 * n - 2}, got {_describe(ti)}"
                )
            if ti in seen:
                raise InputError(f"dump values[{i}].treeIndex {ti} is used by another value")
            seen.add(ti)
            tree_indices.append(ti)
            vals.append(entry["value"])
        h = _hasher()
        canon = codec.normalize_all(vals, h, lambda i: f"dump values[{i}].value")
        obj = cls(codec, tree, canon, tree_indices)
        obj.validate()
        return obj

    # -- accessors ------------------------------------------------------------------------

    @property
    def root(self) -> str:
        """The root hash, 0x-hex."""
        return _hex(self._tree[0])

    @property
    def root_bytes(self) -> bytes:
        """The root hash, 32 bytes."""
        return self._tree[0]

    @property
    def leaf_encoding(self) -> list[str]:
        """The leaf encoding as given (e.g. ``['address', 'uint256']``)."""
        return list(self._codec.given)

    @property
    def tree(self) -> list[str]:
        """All ``2n - 1`` nodes as 0x-hex (JS ``tree.tree``); O(n)."""
        return [_hex(x) for x in self._tree]

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return (
            f"StandardMerkleTree(root={self.root}, leaves={len(self)}, "
            f"leaf_encoding={self.leaf_encoding!r})"
        )

    def at(self, index: int) -> tuple:
        """The canonical value at value index ``index``."""
        return self._values[self._value_index(index)]

    def tree_index(self, leaf: int | Sequence[Any]) -> int:
        """Where the leaf of a value (index or value) sits in the node array."""
        return self._tree_indices[self._value_index(leaf)]

    def entries(self) -> Iterator[tuple[int, tuple]]:
        """``(value_index, canonical_value)`` in input order, like JS ``entries()``."""
        return iter(enumerate(self._values))

    # -- lookups --------------------------------------------------------------------------

    def leaf_hash(self, value: Sequence[Any]) -> str:
        """The 0x-hex leaf hash of ``value`` (need not be in the tree)."""
        h = _hasher()
        return _hex(self._codec.leaf_hash(self._codec.normalize_one(value, h), h))

    def leaf_lookup(self, value: Sequence[Any]) -> int:
        """The value index of ``value``; :class:`NotFoundError` if it is not in the tree.

        With duplicates, the last one wins (as in JS)."""
        h = _hasher()
        leaf = self._codec.leaf_hash(self._codec.normalize_one(value, h), h)
        if self._lookup is None:
            tree = self._tree
            self._lookup = {tree[ti]: vi for vi, ti in enumerate(self._tree_indices)}
        vi = self._lookup.get(leaf)
        if vi is None:
            raise NotFoundError(f"Leaf is not in tree: {to_json_value(tuple(value))!r:.200}")
        return vi

    def _value_index(self, leaf: Any) -> int:
        if isinstance(leaf, bool):
            raise InputError("expected a value index (int) or a value (list/tuple), got a bool")
        if isinstance(leaf, int):
            if not 0 <= leaf < len(self._values):
                raise InputError(
                    f"Index out of bounds: {leaf} (tree has {len(self._values)} values)",
                    index=leaf,
                )
            return leaf
        if isinstance(leaf, (list, tuple)):
            return self.leaf_lookup(leaf)
        raise InputError(
            f"expected a value index (int) or a value (list/tuple), got {_describe(leaf)}"
        )

    def _checked_tree_index(self, value_index: int, h: Hasher) -> int:
        ti = self._tree_indices[value_index]
        if self._tree[ti] != self._codec.leaf_hash(self._values[value_index], h):
            raise InputError(
                f"Merkle tree does not contain the expected value at values[{value_index}]"
            )
        return ti

    # -- proofs ---------------------------------------------------------------------------

    def get_proof(self, leaf: int | Sequence[Any]) -> list[str]:
        """Proof (0x-hex sibling hashes, leaf to root) for a value index or a value."""
        h = _hasher()
        ti = self._checked_tree_index(self._value_index(leaf), h)
        proof = get_proof(self._tree, ti)
        if process_proof(self._tree[ti], proof) != self._tree[0]:  # pragma: no cover
            raise InputError("Unable to prove value")
        return [_hex(p) for p in proof]

    def get_multi_proof(self, leaves: Iterable[int | Sequence[Any]]) -> MultiProof[tuple, str]:
        """Multiproof for several value indices and/or values (JS ``getMultiProof``)."""
        if isinstance(leaves, (str, bytes)) or not isinstance(leaves, Iterable):
            raise InputError(f"expected a list of value indices or values, got {_describe(leaves)}")
        h = _hasher()
        indices = [self._checked_tree_index(self._value_index(x), h) for x in leaves]
        core = get_multi_proof(self._tree, indices)
        if process_multi_proof(core) != self._tree[0]:  # pragma: no cover
            raise InputError("Unable to prove values")
        if self._lookup is None:
            tree = self._tree
            self._lookup = {tree[ti]: vi for vi, ti in enumerate(self._tree_indices)}
        lookup = self._lookup
        return MultiProof(
            [self._values[lookup[x]] for x in core.leaves],
            [_hex(p) for p in core.proof],
            core.proof_flags,
        )

    def _verify(self, leaf: int | Sequence[Any], proof: Sequence[bytes | str]) -> bool:
        """Whether ``proof`` proves ``leaf`` (a value index or a value) under this root."""
        h = _hasher()
        if isinstance(leaf, int) and not isinstance(leaf, bool):
            canon = self._values[self._value_index(leaf)]
        else:
            canon = self._codec.normalize_one(leaf, h)
        return process_proof(self._codec.leaf_hash(canon, h), proof) == self._tree[0]

    def _verify_multi_proof(self, multiproof: MultiProof | Mapping[str, Any]) -> bool:
        """Whether ``multiproof`` (leaves as values or value indices) proves its leaves
        under this root."""
        mp = MultiProof.from_json(multiproof)
        h = _hasher()
        leaves = []
        for i, v in enumerate(mp.leaves):
            if isinstance(v, int) and not isinstance(v, bool):
                canon = self._values[self._value_index(v)]
            else:
                canon = self._codec.normalize_one(v, h, f"multiproof leaves[{i}]")
            leaves.append(self._codec.leaf_hash(canon, h))
        return process_multi_proof(MultiProof(leaves, mp.proof, mp.proof_flags)) == self._tree[0]

    verify = _dualmethod(_static_verify, _verify)
    verify_multi_proof = _dualmethod(_static_verify_multi_proof, _verify_multi_proof)

    # -- integrity, dump, render ----------------------------------------------------------

    @_bulk
    def validate(self) -> None:
        """Recompute every leaf and inner node; :class:`InputError` names the first mismatch."""
        h, hh = _hashers()
        hashes = self._codec.hash_all(self._values, hh)
        tree = self._tree
        for vi, (leaf, ti) in enumerate(zip(hashes, self._tree_indices)):
            if tree[ti] != leaf:
                raise InputError(
                    f"Merkle tree does not match its values: values[{vi}] hashes to "
                    f"{_hex(leaf)} but tree[{ti}] is {_hex(tree[ti])}",
                    index=vi,
                )
        bad = _bad_inner_node(tree)
        if bad is not None:
            raise InputError(
                f"Merkle tree is invalid: tree[{bad}] is not the hash of its children "
                f"tree[{2 * bad + 1}] and tree[{2 * bad + 2}]",
                node=bad,
            )

    @_bulk
    def dump(self) -> dict[str, Any]:
        """The ``standard-v1`` dump as a JSON-ready dict (see the module docstring)."""
        return {
            "format": FORMAT,
            "leafEncoding": list(self._codec.given),
            "tree": [_hex(x) for x in self._tree],
            "values": [
                {"value": v, "treeIndex": ti}
                for v, ti in zip(self._codec.to_json_all(self._values), self._tree_indices)
            ],
        }

    def render(self) -> str:
        """The tree as indented text, like JS ``render()``."""
        return render_merkle_tree(self._tree)
