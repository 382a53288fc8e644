"""Core tree functions of :mod:`loraledger.crypto.merkle` on raw 32-byte hashes, like OZ
``core.js``: ``MultiProof``, ``hash_pair``, ``make_merkle_tree``, proofs and multiproofs,
validity checks and rendering."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from loraledger.errors import InputError

from .encoding import _describe, _hex, _node, _nodes, to_json_value
from .hashing import Hasher, _hasher

# --------------------------------------------------------------------------------------
# core (array tree of 32-byte hashes), like OZ core.js
# --------------------------------------------------------------------------------------

L = TypeVar("L")
P = TypeVar("P")


@dataclass
class MultiProof(Generic[L, P]):
    """A multiproof, as JS ``{leaves, proof, proofFlags}``.

    From :meth:`StandardMerkleTree.get_multi_proof`: ``leaves`` are canonical values and
    ``proof`` is 0x-hex strings. From the core :func:`get_multi_proof`: both are
    ``bytes`` hashes. ``to_json()`` gives the JS-shaped dict for either.
    """

    leaves: list[L]
    proof: list[P]
    proof_flags: list[bool] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """``{"leaves": [...], "proof": [...], "proofFlags": [...]}`` with JSON-safe values."""
        return {
            "leaves": [to_json_value(v) for v in self.leaves],
            "proof": [to_json_value(p) for p in self.proof],
            "proofFlags": list(self.proof_flags),
        }

    @classmethod
    def from_json(cls, data: Any) -> MultiProof:
        """Accept a MultiProof, or a mapping with ``leaves``, ``proof`` and ``proofFlags``
        (or ``proof_flags``)."""
        if isinstance(data, MultiProof):
            return data
        if not isinstance(data, Mapping):
            raise InputError(
                f"expected a multiproof {{leaves, proof, proofFlags}}, got {_describe(data)}"
            )
        flags = data.get("proofFlags", data.get("proof_flags"))
        leaves, proof = data.get("leaves"), data.get("proof")
        for name, xs in (("leaves", leaves), ("proof", proof), ("proofFlags", flags)):
            if not isinstance(xs, (list, tuple)):
                raise InputError(f"multiproof {name}: expected a list, got {_describe(xs)}")
        return cls(list(leaves), list(proof), list(flags))  # type: ignore[arg-type]


def hash_pair(a: bytes | str, b: bytes | str) -> bytes:
    """OZ ``standardNodeHash``: keccak256 of the two 32-byte hashes sorted ascending."""
    a, b = _node(a, "a"), _node(b, "b")
    h = _hasher()
    return h(a + b) if a < b else h(b + a)


def _fill_inner_nodes(tree: list[bytes], n_leaves: int, h: Hasher) -> None:
    """Compute tree[n_leaves-2] .. tree[0] from their children, a heap level-chunk at a time."""
    hi = n_leaves - 1  # inner nodes are [0, hi)
    while hi > 0:
        lo = hi // 2  # every i in [lo, hi) has children >= hi, already computed
        left = tree[2 * lo + 1 : 2 * hi + 1 : 2]
        right = tree[2 * lo + 2 : 2 * hi + 2 : 2]
        tree[lo:hi] = [h(a + b) if a < b else h(b + a) for a, b in zip(left, right)]
        hi = lo


def make_merkle_tree(leaves: Sequence[bytes | str]) -> list[bytes]:
    """OZ ``makeMerkleTree``: the ``2n - 1`` node array for leaf hashes (in the given order,
    stored at the end of the array in reverse)."""
    nodes = _nodes(leaves, "leaves")
    if not nodes:
        raise InputError("Expected non-zero number of leaves")
    tree: list[bytes] = [b""] * (len(nodes) - 1) + nodes[::-1]
    _fill_inner_nodes(tree, len(nodes), _hasher())
    return tree


def _check_leaf_index(tree: Sequence[Any], i: Any) -> int:
    if isinstance(i, bool) or not isinstance(i, int):
        raise InputError(f"tree index must be an int, got {_describe(i)}")
    if not (0 <= i < len(tree)) or 2 * i + 1 < len(tree):
        raise InputError(f"Index is not a leaf: tree index {i} (tree has {len(tree)} nodes)")
    return i


def _sibling(i: int) -> int:
    return i + 1 if i % 2 else i - 1


def get_proof(tree: Sequence[bytes | str], index: int) -> list[bytes]:
    """OZ ``getProof``: sibling hashes from leaf ``tree[index]`` up to the root."""
    _check_leaf_index(tree, index)
    proof = []
    while index > 0:
        proof.append(_node(tree[_sibling(index)], f"tree[{_sibling(index)}]"))
        index = (index - 1) // 2
    return proof


def get_multi_proof(tree: Sequence[bytes | str], indices: Iterable[int]) -> MultiProof[bytes, bytes]:
    """OZ ``getMultiProof`` for tree indices of leaves (not value indices)."""
    idx = [_check_leaf_index(tree, i) for i in indices]
    idx.sort(reverse=True)
    if any(idx[p] == idx[p + 1] for p in range(len(idx) - 1)):
        raise InputError("Cannot prove duplicated index")
    stack = deque(idx)
    proof: list[bytes] = []
    flags: list[bool] = []
    while stack and stack[0] > 0:
        j = stack.popleft()
        s = _sibling(j)
        if stack and stack[0] == s:
            flags.append(True)
            stack.popleft()
        else:
            flags.append(False)
            proof.append(_node(tree[s], f"tree[{s}]"))
        stack.append((j - 1) // 2)
    if not idx:
        proof.append(_node(tree[0], "tree[0]"))
    return MultiProof([_node(tree[i], f"tree[{i}]") for i in idx], proof, flags)


def process_proof(leaf: bytes | str, proof: Sequence[bytes | str]) -> bytes:
    """OZ ``processProof``: the root implied by ``leaf`` (a leaf hash) and ``proof``."""
    node = _node(leaf, "leaf")
    h = _hasher()
    for p in _nodes(proof, "proof"):
        node = h(node + p) if node < p else h(p + node)
    return node


def process_multi_proof(multiproof: MultiProof | Mapping[str, Any]) -> bytes:
    """OZ ``processMultiProof``: the root implied by a multiproof of leaf *hashes*.

    Raises :class:`InputError` when the multiproof is structurally invalid (as JS throws).
    """
    mp = MultiProof.from_json(multiproof)
    leaves = _nodes(mp.leaves, "multiproof leaves")
    proof = deque(_nodes(mp.proof, "multiproof proof"))
    flags = mp.proof_flags
    if any(f is not True and f is not False for f in flags):
        raise InputError("multiproof proofFlags must all be booleans")
    if len(proof) < sum(1 for f in flags if not f):
        raise InputError("Invalid multiproof format: fewer proof hashes than false proofFlags")
    if len(leaves) + len(proof) != len(flags) + 1:
        raise InputError(
            "Provided leaves and multiproof are not compatible: "
            "len(leaves) + len(proof) must equal len(proofFlags) + 1"
        )
    h = _hasher()
    stack = deque(leaves)
    for flag in flags:
        if not stack or (flag and len(stack) < 2):
            raise InputError("Invalid multiproof: proofFlags consume more leaves than exist")
        a = stack.popleft()
        b = stack.popleft() if flag else proof.popleft()
        stack.append(h(a + b) if a < b else h(b + a))
    if len(stack) + len(proof) != 1:  # pragma: no cover - implied by the length checks
        raise InputError("Invalid multiproof")
    return stack.pop() if stack else proof.popleft()


def is_valid_merkle_tree(tree: Sequence[bytes | str]) -> bool:
    """OZ ``isValidMerkleTree``: every node is 32 bytes and every inner node hashes its children."""
    try:
        nodes = _nodes(tree, "tree")
    except InputError:
        return False
    return len(nodes) > 0 and _bad_inner_node(nodes) is None


def _bad_inner_node(nodes: list[bytes]) -> int | None:
    if len(nodes) % 2 == 0:  # a node with a left child but no right one
        return (len(nodes) - 2) // 2
    h = _hasher()
    n_inner = len(nodes) // 2
    expected = [
        h(a + b) if a < b else h(b + a)
        for a, b in zip(nodes[1 : 2 * n_inner + 1 : 2], nodes[2 : 2 * n_inner + 2 : 2])
    ]
    if expected == nodes[:n_inner]:
        return None
    # The deepest mismatch: a tampered inner node fails its own check and its parent's.
    return max(i for i, (e, x) in enumerate(zip(expected, nodes)) if e != x)


def render_merkle_tree(tree: Sequence[bytes | str]) -> str:
    """OZ ``renderMerkleTree``: the tree as indented text (index and hash per line)."""
    nodes = _nodes(tree, "tree")
    if not nodes:
        raise InputError("Expected non-zero number of nodes")
    stack: list[tuple[int, list[int]]] = [(0, [])]
    lines = []
    while stack:
        i, path = stack.pop()
        lines.append(
            "".join(["   ", "│  "][p] for p in path[:-1])
            + "".join(["└─ ", "├─ "][p] for p in path[-1:])
            + f"{i}) {_hex(nodes[i])}"
        )
        if 2 * i + 2 < len(nodes):
            stack.append((2 * i + 2, path + [0]))
            stack.append((2 * i + 1, path + [1]))
    return "\n".join(lines)
