"""OpenZeppelin ``StandardMerkleTree`` in pure Python, byte-for-byte compatible with JS.

This module reimplements ``StandardMerkleTree`` from ``@openzeppelin/merkle-tree``
(v1.0.x) so that trees built here have the same root, the same layout, the same proofs
and multiproofs and the same ``standard-v1`` dumps as trees built by the JS library,
and so that every proof verifies with OpenZeppelin's ``MerkleProof.verify`` /
``MerkleProof.multiProofVerify`` (contracts 5.x). It does no I/O.

The format
==========

Leaves
    A value is a tuple of fields typed by ``leaf_encoding``, a list of Solidity ABI
    types such as ``["address", "uint256"]``. Its leaf hash is the *double* keccak of
    its standard ABI encoding::

        leaf = keccak256(keccak256(abi.encode(field_0, field_1, ...)))

    which is what Solidity computes with
    ``keccak256(bytes.concat(keccak256(abi.encode(account, amount))))``. Hashing twice
    means no 64-byte leaf preimage can be confused with an inner node (second
    preimage attack).

Inner nodes
    ``node = keccak256(min(a, b) ++ max(a, b))`` (:func:`hash_pair`): the two children
    are sorted as 32-byte big-endian numbers before hashing, so a proof is just a list
    of sibling hashes with no left/right bits, as ``MerkleProof`` expects.

Layout
    The tree is one array of ``2n - 1`` hashes laid out like a binary heap: node ``i``
    has children ``2i + 1`` and ``2i + 2`` and the root is ``tree[0]``. The ``n``
    leaf hashes are sorted ascending (``sort_leaves=True``, the default; stable, so
    duplicates keep their input order) and stored at the *end* of the array in
    reverse, i.e. the smallest leaf hash is ``tree[2n - 2]``. Inner nodes are filled
    from ``tree[n - 2]`` down to ``tree[0]``. Every value keeps its input position;
    ``treeIndex`` records where its leaf landed. Duplicate values are allowed, as in
    JS.

Proofs
    :meth:`StandardMerkleTree.get_proof` returns the sibling hashes from the leaf up
    to (not including) the root. :meth:`StandardMerkleTree.get_multi_proof` returns
    ``MultiProof(leaves, proof, proof_flags)`` exactly as JS returns
    ``{leaves, proof, proofFlags}``: the leaves come back ordered by descending tree
    index (which, with sorted leaves, is ascending leaf hash), the order
    ``MerkleProof.multiProofVerify`` needs.

Dumps (``standard-v1``)
    ``{"format": "standard-v1", "leafEncoding": [...], "tree": ["0x..", ...],
    "values": [{"value": [...], "treeIndex": n}, ...]}``, as JS ``tree.dump()``.
    :meth:`StandardMerkleTree.dump` writes JSON-safe values that the JS library reads
    back unchanged (``StandardMerkleTree.load(dump)`` then ``validate()`` passes and
    the proofs are identical):

    * ``address`` -> EIP-55 checksummed string (always; whatever case was given);
    * ``uintN`` / ``intN`` -> decimal string (JSON numbers lose precision past 2**53);
    * ``bytesN`` / ``bytes`` -> lowercase ``0x`` hex string;
    * ``bool`` -> JSON ``true`` / ``false``; ``string`` -> string;
    * arrays and tuples -> JSON arrays of the above;
    * tree nodes -> lowercase ``0x`` hex.

    :meth:`StandardMerkleTree.load` reads dumps written by JS or Python and checks them
    completely: format, leaf encoding, node syntax, shape (``2n - 1`` nodes, every
    ``treeIndex`` a distinct leaf slot), that each value hashes to its leaf and that
    each inner node is the hash of its children. Any problem is an
    :class:`~loraledger.errors.InputError` naming it.

Values in Python
================

Inputs are validated and *normalised* once, when a tree is built or loaded, and the
tree keeps the normalised ("canonical") form, which is what :meth:`entries`,
:meth:`at` and multiproof ``leaves`` return:

==============  =================================================  ==================
ABI type        accepted input                                     canonical value
==============  =================================================  ==================
address         ``0x`` + 40 hex digits (all lower, all upper, or   checksummed ``str``
                valid EIP-55 mixed case), or 20 ``bytes``
uintN / intN    ``int`` (not ``bool``/``float``), decimal string,  ``int``
                or ``0x`` hex string; range-checked
bool            ``True``/``False`` or ``"true"``/``"false"``       ``bool``
bytesN          exactly N ``bytes``, or ``0x`` + 2N hex digits     ``bytes``
bytes           ``bytes``, or ``0x`` + even number of hex digits   ``bytes``
string          ``str`` (valid UTF-8, i.e. no lone surrogates)     ``str``
T[] / T[k]      list or tuple (length k for ``T[k]``)              ``tuple``
(T1,T2,...)     list or tuple of matching arity                    ``tuple``
==============  =================================================  ==================

A leaf value itself is a list or tuple with one field per ``leaf_encoding`` entry and
is stored as a ``tuple``. ``fixed``/``ufixed`` types are refused because the JS library
cannot encode them; ``function`` is accepted as ``bytes24``.

This is deliberately stricter than the JS library, which silently left-pads short
addresses, right-pads short ``bytesN`` and ignores EIP-55 checksums: here those are
:class:`~loraledger.errors.InputError`. Every value Python accepts, JS accepts and
hashes identically.

Performance
===========

Everything is kept as ``bytes`` internally; hex appears only at the API edge. The
static elementary types (``address``, ``uintN``, ``intN``, ``bool``, ``bytesN``) are
encoded directly as 32-byte words without calling :mod:`eth_abi`; anything dynamic
(``string``, ``bytes``, arrays, tuples) goes through ``eth_abi.encode``. Keccak is
pycryptodome's C implementation called through :mod:`ctypes` with one reusable
state per thread (about 3x faster than ``eth_hash.auto.keccak``, which is the fallback
when that library cannot be loaded). Bulk operations (``of``, ``load``, ``dump``,
``validate``) pause the cyclic garbage collector while they run, since allocating
millions of tuples otherwise triggers repeated full collections. On a 2-core machine
``of`` takes about 0.6 s for 100,000 ``(address, uint256)`` leaves and 7 s for
1,000,000 (the JS library: 9 s and 103 s); see ``scripts/bench_merkle.py``.

Core helpers
============

Like OZ's ``core.js``, the module-level functions :func:`make_merkle_tree`,
:func:`get_proof`, :func:`get_multi_proof`, :func:`process_proof`,
:func:`process_multi_proof`, :func:`is_valid_merkle_tree`, :func:`render_merkle_tree`
and :func:`hash_pair` work on raw 32-byte hashes: they accept ``bytes`` or ``0x`` hex
strings and return ``bytes``.
"""

from __future__ import annotations

from .core import (
    MultiProof,
    get_multi_proof,
    get_proof,
    hash_pair,
    is_valid_merkle_tree,
    make_merkle_tree,
    process_multi_proof,
    process_proof,
    render_merkle_tree,
)
from .encoding import standard_leaf_hash, to_json_value
from .hashing import keccak256
from .standard import FORMAT, StandardMerkleTree

__all__ = [
    "FORMAT",
    "MultiProof",
    "StandardMerkleTree",
    "get_multi_proof",
    "get_proof",
    "hash_pair",
    "is_valid_merkle_tree",
    "keccak256",
    "make_merkle_tree",
    "process_multi_proof",
    "process_proof",
    "render_merkle_tree",
    "standard_leaf_hash",
    "to_json_value",
]
