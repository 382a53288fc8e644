"""An RFC 9162 Merkle tree log of record hashes (pure core: no I/O).

The ledger appends one leaf per record (``records.log_leaf(record)``, the 32-byte
keccak256 of the record's canonical JSON) to a :class:`MerkleLog`, and publishes the
log's root at chosen sizes (epochs). Anyone holding a record hash can then check, with
the stand-alone verifiers below and nothing else (no server, no tree), that

* the record is in the log at a given size (:func:`verify_inclusion`), and
* the log at a later size extends the log at an earlier size
  (:func:`verify_consistency`): nothing published was rewritten or dropped.

The log's leaf *data* is the record hash; the RFC leaf hash a proof starts from is
``leaf_hash(record_hash) = SHA-256(0x00 || record_hash)``.

Hashing is exactly RFC 9162 section 2.1.1 (the same as RFC 6962, Certificate
Transparency) with SHA-256 and domain separation:

* empty tree:  ``MTH({}) = SHA-256("")``
* leaf:        ``MTH({d}) = SHA-256(0x00 || d)``
* node:        ``MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))`` where ``k``
  is the largest power of two smaller than ``n``.

Proofs are the RFC's lists of hashes: ``PATH(m, D[n])`` (2.1.3.1) for inclusion and
``PROOF(m, D[n])`` / ``SUBPROOF`` (2.1.4.1) for consistency, ordered from the bottom
of the tree to the top. The verifiers implement the bit-walking algorithms of
2.1.3.2 and 2.1.4.2; they never rebuild a tree.

Edge cases (decisions):

* Inclusion needs ``0 <= index < size``; there is no inclusion proof in an empty
  tree (``NotFoundError`` when asked of the log, ``False`` from the verifier).
* Consistency ``old_size == new_size``: the proof is empty, and it verifies iff the
  two roots are equal.
* Consistency ``old_size == 0``: the empty tree is a prefix of every tree, so the
  proof is empty; it verifies iff the proof is empty and ``old_root`` is the empty
  tree's root ``SHA-256("")`` (any ``new_root``). RFC 9162 leaves this case out of
  its algorithm; this is what sigsum-go does (transparency-dev/merkle has, depending
  on the version, accepted size 0 without looking at the roots or rejected it as
  meaningless). Checking ``old_root`` catches a client that paired the wrong root
  with size 0.
* ``old_size > new_size`` is an input error when asking the log, and ``False`` from
  the verifier.

The module-level proof functions (:func:`inclusion_proof`, :func:`consistency_proof`)
return the bare lists of hashes, as in the RFC; :class:`MerkleLog` returns
:class:`InclusionProof` / :class:`ConsistencyProof` objects, which carry their sizes
and serialise to JSON with ``to_dict()`` (hashes as ``0x``-prefixed lowercase hex).

:class:`MerkleLog` keeps, for every level ``k``, the hashes of all complete subtrees of
``2**k`` leaves, packed 32 bytes each in one ``bytearray`` per level: about 64 bytes
per leaf in all. Appends are amortised O(1) hashes; the root of any size up to the
current one, and inclusion and consistency proofs against any such size, take
O(log n) hashes. The class is not thread-safe; the ledger serialises access.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InputError, NotFoundError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "LEAF_PREFIX",
    "MAX_TREE_SIZE",
    "NODE_PREFIX",
    "ConsistencyProof",
    "InclusionProof",
    "MerkleLog",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion_proof",
    "root_from_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]

#: Bytes in a SHA-256 digest: every leaf hash, node hash, root and proof element.
HASH_SIZE = 32
#: Domain-separation prefix of leaf hashes (RFC 9162 2.1.1).
LEAF_PREFIX = b"\x00"
#: Domain-separation prefix of interior node hashes (RFC 9162 2.1.1).
NODE_PREFIX = b"\x01"
#: Root of the empty tree: SHA-256 of the empty string.
EMPTY_ROOT = hashlib.sha256(b"").digest()
#: Largest tree size the verifiers accept (RFC 9162 sizes are uint64).
MAX_TREE_SIZE = (1 << 64) - 1

_sha256 = hashlib.sha256


# --------------------------------------------------------------------------- hashing


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``: the hash of a leaf holding ``data``."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InputError(f"leaf data must be bytes, got {type(data).__name__}")
    return _sha256(LEAF_PREFIX + bytes(data)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``: the hash of an interior node."""
    return _sha256(NODE_PREFIX + left + right).digest()


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _require_hash(value: object, what: str) -> bytes:
    if isinstance(value, (bytearray, memoryview)):
        value = bytes(value)
    if not isinstance(value, bytes):
        raise InputError(f"{what} must be {HASH_SIZE} bytes, got {type(value).__name__}")
    if len(value) != HASH_SIZE:
        raise InputError(f"{what} must be {HASH_SIZE} bytes, got {len(value)}")
    return value


def _is_size(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TREE_SIZE


def _require_int(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InputError(f"{what} must be an integer, got {type(value).__name__}")
    if value < 0:
        raise InputError(f"{what} must not be negative, got {value}")
    return value


# ------------------------------------------------------------------------ hex (JSON)


def _to_hex(value: bytes) -> str:
    return "0x" + value.hex()


def _from_hex(value: object, what: str) -> bytes:
    if not isinstance(value, str) or not value.startswith("0x") or len(value) != 2 + 2 * HASH_SIZE:
        raise InputError(f"{what} must be 0x followed by {2 * HASH_SIZE} hex digits")
    try:
        return bytes.fromhex(value[2:])
    except ValueError:
        raise InputError(f"{what} must be 0x followed by {2 * HASH_SIZE} hex digits") from None


def _int_field(data: Mapping[str, Any], key: str, what: str) -> int:
    if key not in data:
        raise InputError(f"{what} has no {key!r}")
    return _require_int(data[key], f"{what} {key}")


def _path_field(data: Mapping[str, Any], what: str) -> list[bytes]:
    path = data.get("path")
    if not isinstance(path, list):
        raise InputError(f"{what} path must be a list of hashes")
    if len(path) > 2 * 64:
        raise InputError(f"{what} path is too long ({len(path)} hashes)")
    return [_from_hex(item, f"{what} path[{i}]") for i, item in enumerate(path)]


# ------------------------------------------------------------------------ proof objects


@dataclass(frozen=True)
class InclusionProof:
    """Proof that the leaf with hash ``leaf_hash`` is at ``index`` in the tree of ``size``.

    ``path`` is RFC 9162's ``PATH(index, D[size])``, bottom to top.
    """

    index: int
    size: int
    leaf_hash: bytes
    path: list[bytes]

    def root(self) -> bytes:
        """The root this proof leads to (``InputError`` if the proof is malformed)."""
        return root_from_inclusion_proof(self.leaf_hash, self.index, self.size, self.path)

    def verify(self, root: bytes) -> bool:
        """True iff the proof shows ``leaf_hash`` at ``index`` in the tree with ``root``."""
        return verify_inclusion(self.leaf_hash, self.index, self.size, self.path, root)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"index", "size", "leafHash": "0x..", "path": ["0x..", ...]}``."""
        return {
            "index": self.index,
            "size": self.size,
            "leafHash": _to_hex(self.leaf_hash),
            "path": [_to_hex(h) for h in self.path],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InclusionProof:
        """Parse :meth:`to_dict` output; ``InputError`` names what is malformed."""
        what = "inclusion proof"
        if not isinstance(data, Mapping):
            raise InputError(f"{what} must be a JSON object")
        index = _int_field(data, "index", what)
        size = _int_field(data, "size", what)
        if index >= size:
            raise InputError(f"{what} index {index} is not below its size {size}")
        return cls(
            index=index,
            size=size,
            leaf_hash=_from_hex(data.get("leafHash"), f"{what} leafHash"),
            path=_path_field(data, what),
        )


@dataclass(frozen=True)
class ConsistencyProof:
    """Proof that the tree of ``new_size`` extends the tree of ``old_size``.

    ``path`` is RFC 9162's ``PROOF(old_size, D[new_size])``, bottom to top; empty when
    ``old_size`` is 0 or equal to ``new_size``.
    """

    old_size: int
    new_size: int
    path: list[bytes]

    def verify(self, old_root: bytes, new_root: bytes) -> bool:
        """True iff the proof shows the tree with ``new_root`` extends the one with ``old_root``."""
        return verify_consistency(self.old_size, self.new_size, old_root, new_root, self.path)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"oldSize", "newSize", "path": ["0x..", ...]}``."""
        return {
            "oldSize": self.old_size,
            "newSize": self.new_size,
            "path": [_to_hex(h) for h in self.path],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConsistencyProof:
        """Parse :meth:`to_dict` output; ``InputError`` names what is malformed."""
        what = "consistency proof"
        if not isinstance(data, Mapping):
            raise InputError(f"{what} must be a JSON object")
        old_size = _int_field(data, "oldSize", what)
        new_size = _int_field(data, "newSize", what)
        if old_size > new_size:
            raise InputError(f"{what} oldSize {old_size} is larger than newSize {new_size}")
        return cls(old_size=old_size, new_size=new_size, path=_path_field(data, what))


# ------------------------------------------------------------------------------ the log


class MerkleLog:
    """An append-only, in-memory RFC 9162 Merkle tree over 32-byte leaf hashes.

    Level ``k`` of the cache holds the hashes of the complete subtrees of ``2**k``
    leaves, left to right, packed in a ``bytearray`` (level 0 holds the leaf hashes).
    Indices are 0-based.
    """

    __slots__ = ("_levels",)

    def __init__(self) -> None:
        self._levels: list[bytearray] = [bytearray()]

    @classmethod
    def from_leaf_hashes(cls, hashes: Iterable[bytes]) -> MerkleLog:
        """Rebuild a log from its stored leaf hashes (in order), level by level."""
        log = cls()
        level = bytearray()
        for i, h in enumerate(hashes):
            if type(h) is not bytes or len(h) != HASH_SIZE:
                h = _require_hash(h, f"leaf hash {i}")
            level += h
        levels = [level]
        pair = 2 * HASH_SIZE
        while len(level) >= pair:
            below, level = level, bytearray()
            with memoryview(below) as view:
                for i in range(0, len(below) // pair * pair, pair):
                    level += _sha256(NODE_PREFIX + view[i : i + pair]).digest()
            levels.append(level)
        log._levels = levels
        return log

    # ---------------------------------------------------------------- size, leaves

    @property
    def size(self) -> int:
        """Number of leaves."""
        return len(self._levels[0]) // HASH_SIZE

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return f"MerkleLog(size={self.size})"

    def append(self, data: bytes) -> int:
        """Append a leaf holding ``data`` (hashed as ``SHA-256(0x00 || data)``); return its index."""
        return self.append_leaf_hash(leaf_hash(data))

    def append_leaf_hash(self, h: bytes) -> int:
        """Append an already computed leaf hash; return its index."""
        h = _require_hash(h, "leaf hash")
        levels = self._levels
        level = levels[0]
        index = len(level) // HASH_SIZE
        level += h
        k = 0
        node = index
        # Each time the new node is a right child, its parent subtree is complete.
        while node & 1:
            h = _sha256(NODE_PREFIX + level[-2 * HASH_SIZE :]).digest()
            k += 1
            if k == len(levels):
                levels.append(bytearray())
            level = levels[k]
            level += h
            node >>= 1
        return index

    def leaf_hash(self, index: int) -> bytes:
        """The leaf hash at ``index`` (``NotFoundError`` if ``index >= size``)."""
        index = _require_int(index, "leaf index")
        if index >= self.size:
            raise NotFoundError(
                f"leaf index {index} is beyond the log (size {self.size})", index=index, size=self.size
            )
        return self._node(0, index)

    def leaf_hashes(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The leaf hashes in ``[start, end)`` in order (what to persist)."""
        end = self.size if end is None else min(_require_int(end, "end"), self.size)
        level = self._levels[0]
        for i in range(_require_int(start, "start"), end):
            yield bytes(level[i * HASH_SIZE : (i + 1) * HASH_SIZE])

    # ---------------------------------------------------------------- roots

    def root(self, size: int | None = None) -> bytes:
        """``MTH(D[0:size])``; ``size`` defaults to the current size."""
        size = self._check_size(size)
        return self._range_hash(0, size) if size else EMPTY_ROOT

    def frontier(self, size: int | None = None) -> list[tuple[int, bytes]]:
        """The compact range ``[0, size)``: ``(level, hash)`` of the perfect subtrees on
        the right edge, left (largest) to right (smallest). Folding them from the right
        with :func:`node_hash` gives the root."""
        size = self._check_size(size)
        out = []
        offset = 0
        for p in range(size.bit_length() - 1, -1, -1):
            if size >> p & 1:
                out.append((p, self._node(p, offset >> p)))
                offset += 1 << p
        return out

    def state(self, size: int | None = None) -> dict[str, Any]:
        """``{"size": n, "root": "0x..", "frontier": [{"level": k, "hash": "0x.."}, ...]}``."""
        size = self._check_size(size)
        return {
            "size": size,
            "root": _to_hex(self.root(size)),
            "frontier": [{"level": k, "hash": _to_hex(h)} for k, h in self.frontier(size)],
        }

    # ---------------------------------------------------------------- proofs

    def inclusion_proof(self, index: int, size: int | None = None) -> InclusionProof:
        """Proof that leaf ``index`` is in the tree of ``size`` (default: current size)."""
        size = self._check_size(size)
        index = _require_int(index, "leaf index")
        if index >= size:
            raise NotFoundError(
                f"leaf index {index} is not in a tree of size {size}", index=index, size=size
            )
        path = self._path(0, index, size)
        return InclusionProof(index=index, size=size, leaf_hash=self._node(0, index), path=path)

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> ConsistencyProof:
        """Proof that the tree of ``new_size`` (default: current) extends the tree of ``old_size``."""
        new_size = self._check_size(new_size, "new size")
        old_size = _require_int(old_size, "old size")
        if old_size > new_size:
            raise InputError(
                f"old size {old_size} is larger than new size {new_size}", old_size=old_size, new_size=new_size
            )
        if old_size == 0 or old_size == new_size:
            return ConsistencyProof(old_size=old_size, new_size=new_size, path=[])
        # RFC 9162 SUBPROOF(m, D[n], true), bottom-up: the old tree's right edge ends in the
        # complete subtree of 2**level leaves [m - 2**level, m); the proof is that node
        # (left out when it is the whole old tree, i.e. m is a power of two) followed by
        # its inclusion path in the new tree.
        level = (old_size & -old_size).bit_length() - 1
        index = (old_size - 1) >> level
        path = self._path(level, index, new_size)
        if index:
            path.insert(0, self._node(level, index))
        return ConsistencyProof(old_size=old_size, new_size=new_size, path=path)

    # ---------------------------------------------------------------- internals

    def _path(self, level: int, index: int, size: int) -> list[bytes]:
        """Inclusion path, bottom to top, of the complete node ``index`` at ``level`` in the
        tree of ``size`` leaves (RFC 9162 PATH for ``level == 0``).

        Below the level where the paths to this node and to the last leaf meet, siblings
        are complete nodes except possibly one right sibling that holds the tree's last
        leaves (hashed from the perfect subtrees it splits into). Above it, the path runs
        along the right border, where only left siblings (complete nodes) appear.
        """
        path = []
        last = (size - 1) >> level
        inner = (index ^ last).bit_length()
        for k in range(level, level + inner):
            sibling = (index >> (k - level)) ^ 1
            start = sibling << k
            if start + (1 << k) <= size:
                path.append(self._node(k, sibling))
            else:
                path.append(self._range_hash(start, size))
        node = index >> inner
        k = level + inner
        while node:
            if node & 1:
                path.append(self._node(k, node ^ 1))
            node >>= 1
            k += 1
        return path

    def _check_size(self, size: int | None, what: str = "tree size") -> int:
        current = self.size
        if size is None:
            return current
        size = _require_int(size, what)
        if size > current:
            raise NotFoundError(f"{what} {size} is beyond the log (size {current})", size=size, log_size=current)
        return size

    def _node(self, level: int, index: int) -> bytes:
        return bytes(self._levels[level][index * HASH_SIZE : (index + 1) * HASH_SIZE])

    def _range_hash(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for a subtree of the RFC tree (``start`` is a multiple of the
        power of two at or above ``end - start``), from the perfect subtrees it splits into."""
        width = end - start
        pieces = []
        offset = start
        for p in range(width.bit_length() - 1, -1, -1):
            if width >> p & 1:
                pieces.append(self._node(p, offset >> p))
                offset += 1 << p
        result = pieces.pop()
        while pieces:
            result = _sha256(NODE_PREFIX + pieces.pop() + result).digest()
        return result


# ----------------------------------------------------------- functions over leaf lists


def root_from_leaf_hashes(hashes: Iterable[bytes]) -> bytes:
    """``MTH`` of the leaves with these hashes (``EMPTY_ROOT`` for none)."""
    return MerkleLog.from_leaf_hashes(hashes).root()


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int, size: int | None = None) -> list[bytes]:
    """RFC 9162 ``PATH(index, D[size])`` over these leaf hashes (``size`` defaults to all)."""
    size = len(leaf_hashes) if size is None else _require_int(size, "tree size")
    if size > len(leaf_hashes):
        raise NotFoundError(f"tree size {size} is beyond the {len(leaf_hashes)} leaves given")
    return MerkleLog.from_leaf_hashes(leaf_hashes[:size]).inclusion_proof(index).path


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int, new_size: int | None = None) -> list[bytes]:
    """RFC 9162 ``PROOF(old_size, D[new_size])`` over these leaf hashes (``new_size`` defaults to all)."""
    new_size = len(leaf_hashes) if new_size is None else _require_int(new_size, "new size")
    if new_size > len(leaf_hashes):
        raise NotFoundError(f"new size {new_size} is beyond the {len(leaf_hashes)} leaves given")
    return MerkleLog.from_leaf_hashes(leaf_hashes[:new_size]).consistency_proof(old_size).path


# ------------------------------------------------------------------------ verification


def root_from_inclusion_proof(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` leads to from ``leaf_hash`` at ``index`` in a tree of ``size``.

    RFC 9162 2.1.3.2, steps 1-4. Raises ``InputError`` if the inputs cannot form a valid
    proof (index not below size, a hash of the wrong length, a path of the wrong length).
    """
    if not _is_size(size) or not _is_size(index):
        raise InputError("index and size must be integers in [0, 2**64)")
    if index >= size:
        raise InputError(f"leaf index {index} is not below the tree size {size}")
    leaf_hash = _require_hash(leaf_hash, "leaf hash")
    fn, sn = index, size - 1
    r = leaf_hash
    for i, p in enumerate(proof):
        if not _is_hash(p):
            raise InputError(f"proof element {i} is not a {HASH_SIZE}-byte hash")
        if sn == 0:
            raise InputError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = _sha256(NODE_PREFIX + p + r).digest()
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _sha256(NODE_PREFIX + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InputError("inclusion proof is shorter than the tree is deep")
    return r


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """True iff ``proof`` shows the leaf ``leaf_hash`` at ``index`` in the tree of ``size``
    with root ``root`` (RFC 9162 2.1.3.2). Never raises for malformed input: False."""
    if not _is_hash(root):
        return False
    try:
        return root_from_inclusion_proof(leaf_hash, index, size, proof) == root
    except (InputError, TypeError):
        return False


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """True iff ``proof`` shows the tree of ``new_size`` with root ``new_root`` extends the
    tree of ``old_size`` with root ``old_root`` (RFC 9162 2.1.4.2; edge cases in the
    module docstring). Never raises for malformed input: False."""
    if not (_is_size(old_size) and _is_size(new_size) and _is_hash(old_root) and _is_hash(new_root)):
        return False
    try:
        path = list(proof)
    except TypeError:
        return False
    if not all(_is_hash(p) for p in path):
        return False
    if old_size > new_size:
        return False
    if old_size == 0:
        return not path and old_root == EMPTY_ROOT and (new_size > 0 or new_root == EMPTY_ROOT)
    if old_size == new_size:
        return not path and old_root == new_root
    # Step 1.
    if not path:
        return False
    # Step 2: when the old tree is a complete subtree, its root is the proof's seed.
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    # Steps 3-4.
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # Step 5.
    fr = sr = path[0]
    # Step 6.
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = _sha256(NODE_PREFIX + c + fr).digest()
            sr = _sha256(NODE_PREFIX + c + sr).digest()
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = _sha256(NODE_PREFIX + sr + c).digest()
        fn >>= 1
        sn >>= 1
    # Step 7.
    return sn == 0 and fr == old_root and sr == new_root
