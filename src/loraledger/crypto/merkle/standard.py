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

import ctypes
import gc
import importlib.util
import json
import operator
import re
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache, wraps
from typing import Any, Generic, TypeVar

from eth_abi import encode as _abi_encode
from eth_abi.grammar import TupleType
from eth_abi.grammar import normalize as _normalize_type
from eth_abi.grammar import parse as _parse_type
from eth_hash.auto import keccak as _eth_keccak

from loraledger.errors import InputError, NotFoundError

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

#: The dump format written by :meth:`StandardMerkleTree.dump` (same as JS).
FORMAT = "standard-v1"

Hasher = Callable[[bytes], bytes]

# --------------------------------------------------------------------------------------
# keccak256
# --------------------------------------------------------------------------------------


def _load_raw_keccak() -> Any:
    """pycryptodome's keccak shared library via ctypes, or None if unavailable."""
    for module in ("Crypto.Hash._keccak", "Cryptodome.Hash._keccak"):
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            continue
        if spec is None or not spec.origin:
            continue
        try:
            lib = ctypes.CDLL(spec.origin)
            # No argtypes on the hot functions: every argument is passed as a prebuilt
            # ctypes object (or bytes -> char*), which is faster than argtypes conversion.
            lib.keccak_init.argtypes = [
                ctypes.POINTER(ctypes.c_void_p),
                ctypes.c_size_t,
                ctypes.c_uint8,
            ]
            lib.keccak_destroy.argtypes = [ctypes.c_void_p]
            for fn in (lib.keccak_init, lib.keccak_reset, lib.keccak_absorb, lib.keccak_digest):
                fn.restype = ctypes.c_int
        except (OSError, AttributeError):
            continue
        return lib
    return None


_RAW_KECCAK = _load_raw_keccak()
_SIZE_T: list[Any] = [ctypes.c_size_t(n) for n in range(257)]  # common input lengths


def _new_hashers() -> tuple[Hasher, Hasher]:
    """``(keccak256, double_keccak256)`` bound to one private C state.

    Not thread-safe (one state): use one pair per thread (see :func:`_hashers`).
    """
    lib = _RAW_KECCAK
    if lib is not None:
        state = ctypes.c_void_p()
        # capacity 64 bytes (keccak256), 24 rounds: what Crypto.Hash.keccak passes.
        if lib.keccak_init(ctypes.byref(state), 64, 24) == 0 and state.value:
            s = ctypes.c_void_p(state.value)
            out = ctypes.create_string_buffer(32)
            n32, pad = _SIZE_T[32], ctypes.c_uint8(1)  # padding 0x01: Keccak, not SHA-3
            sizes = _SIZE_T
            reset, absorb, digest = lib.keccak_reset, lib.keccak_absorb, lib.keccak_digest

            def keccak(data: bytes) -> bytes:
                n = len(data)
                reset(s)
                absorb(s, data, sizes[n] if n <= 256 else ctypes.c_size_t(n))
                digest(s, out, n32, pad)
                return out.raw

            def keccak2(data: bytes) -> bytes:
                n = len(data)
                reset(s)
                absorb(s, data, sizes[n] if n <= 256 else ctypes.c_size_t(n))
                digest(s, out, n32, pad)
                reset(s)
                absorb(s, out, n32)  # absorbs a copy before digest overwrites out
                digest(s, out, n32, pad)
                return out.raw

            weakref.finalize(keccak, lib.keccak_destroy, state.value)
            keccak2.__dict__["_keep"] = keccak  # state lives as long as either function
            return keccak, keccak2
    k = _eth_keccak
    return k, lambda data: k(k(data))


def _self_test() -> None:
    global _RAW_KECCAK
    if _RAW_KECCAK is None:
        return
    try:
        h, hh = _new_hashers()
        samples = [b"", b"abc", bytes(range(64)), bytes(range(256)) * 3]
        if any(h(x) != _eth_keccak(x) or hh(x) != _eth_keccak(_eth_keccak(x)) for x in samples):
            _RAW_KECCAK = None
    except Exception:  # pragma: no cover - depends on the installed pycryptodome
        _RAW_KECCAK = None


_self_test()

_tls = threading.local()


def _hashers() -> tuple[Hasher, Hasher]:
    """This thread's fast ``(keccak256, double_keccak256)``."""
    pair = getattr(_tls, "pair", None)
    if pair is None:
        pair = _tls.pair = _new_hashers()
    return pair


def _hasher() -> Hasher:
    """This thread's fast keccak256."""
    return _hashers()[0]


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC during bulk work: building a million tuples/dicts otherwise
    triggers repeated full collections (dump of 1M leaves: 3 s -> 0.8 s)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


F = TypeVar("F", bound=Callable[..., Any])


def _bulk(fn: F) -> F:
    """Run ``fn`` with the cyclic GC paused (see :func:`_gc_paused`)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _gc_paused():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def keccak256(data: bytes | bytearray | memoryview) -> bytes:
    """keccak256 of ``data`` (32 bytes)."""
    return _hasher()(bytes(data))


# --------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------

_DEC_RE = re.compile(r"-?[0-9]+")
_HEXNUM_RE = re.compile(r"0x[0-9a-fA-F]+")
_HEX_RE = re.compile(r"0x(?:[0-9a-fA-F]{2})*")
_NODE_RE = re.compile(r"0x[0-9a-fA-F]{64}")


def _describe(v: Any) -> str:
    r = repr(v)
    if len(r) > 80:
        r = r[:77] + "..."
    return f"{type(v).__name__} {r}"


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


def _node(x: Any, what: str) -> bytes:
    """A 32-byte hash from bytes or a 0x-hex string."""
    if isinstance(x, str):
        if _NODE_RE.fullmatch(x):
            return bytes.fromhex(x[2:])
    elif isinstance(x, (bytes, bytearray, memoryview)):
        b = bytes(x)
        if len(b) == 32:
            return b
    raise InputError(
        f"{what}: expected a 32-byte hash (0x followed by 64 hex digits), got {_describe(x)}"
    )


def _nodes(xs: Any, what: str) -> list[bytes]:
    if isinstance(xs, (str, bytes, bytearray)) or not isinstance(xs, Iterable):
        raise InputError(f"{what}: expected a list of 32-byte hashes, got {_describe(xs)}")
    xs = list(xs)
    if len(xs) > 16 and all(type(x) is str and len(x) == 66 and x[:2] == "0x" for x in xs):
        # Bulk path for long lists of hex nodes: one fromhex call.
        try:
            raw = bytes.fromhex("".join([x[2:] for x in xs]))
        except ValueError:
            raw = b""
        if len(raw) == 32 * len(xs):
            return [raw[k : k + 32] for k in range(0, len(raw), 32)]
    return [_node(x, f"{what}[{i}]") for i, x in enumerate(xs)]


def to_json_value(value: Any) -> Any:
    """A canonical value in the JSON-safe form used by dumps.

    ``int`` -> decimal string, ``bytes`` -> ``0x`` hex, tuples/lists -> lists;
    ``str`` (addresses are already checksummed) and ``bool`` unchanged.
    """
    if value is True or value is False or isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, (tuple, list)):
        return [to_json_value(v) for v in value]
    raise InputError(f"cannot convert {_describe(value)} to JSON")


# --------------------------------------------------------------------------------------
# ABI types: validation, normalisation, encoding
# --------------------------------------------------------------------------------------


class _BadValue(Exception):
    """A field failed normalisation; ``path`` locates it inside nested arrays/tuples."""

    def __init__(self, msg: str, path: str = "") -> None:
        super().__init__(msg)
        self.msg = msg
        self.path = path


# A normaliser turns one input field into its canonical value or raises _BadValue.
Normaliser = Callable[[Any], Any]


@dataclass(frozen=True)
class _Spec:
    label: str  # normalised ABI type string, e.g. "uint256", "(address,bytes)[]"
    make_norm: Callable[[Hasher], Normaliser]
    word: Callable[[Any], bytes] | None  # 32-byte encoding for static elementary types
    json: Callable[[Any], Any] = to_json_value  # canonical value -> JSON-safe value


def _identity(x: Any) -> Any:
    return x


_M01 = int.from_bytes(b"\x01" * 40, "big")
_M20 = _M01 * 0x20


def _checksum(lower: str, h: Hasher) -> str:
    """EIP-55 mixed-case form of 40 lowercase hex digits (without 0x)."""
    a = lower.encode("ascii")
    hh = h(a)[:20].hex().encode("ascii")  # 40 nibbles as ASCII
    # A letter is uppercased when its hash nibble is >= 8, i.e. the nibble's ASCII char is
    # '8', '9' (bit 0x08 set) or 'a'..'f' (bit 0x40 set). Do all 40 chars at once on ints.
    hv = int.from_bytes(hh, "big")
    av = int.from_bytes(a, "big")
    flags = ((hv >> 6) | (hv >> 3)) & _M01
    upper = (flags << 5) & (av >> 1) & _M20  # 0x20 where char is a letter (bit 0x40) & flagged
    return (av ^ upper).to_bytes(40, "big").decode("ascii")


def _address_spec() -> _Spec:
    def make_norm(h: Hasher) -> Normaliser:
        def norm(v: Any) -> str:
            if isinstance(v, str):
                if len(v) != 42 or not v.startswith("0x"):
                    raise _BadValue(
                        f"invalid address {v!r}: expected 0x followed by 40 hex digits"
                    )
                body = v[2:]
                try:
                    raw = bytes.fromhex(body)
                except ValueError:
                    raw = b""
                if len(raw) != 20:
                    raise _BadValue(
                        f"invalid address {v!r}: expected 0x followed by 40 hex digits"
                    )
                lower = body.lower()
                cs = _checksum(lower, h)
                if body == cs:
                    return v
                if body != lower and body != body.upper():
                    raise _BadValue(
                        f"invalid address {v!r}: mixed-case address fails its EIP-55 checksum "
                        "(a typo?); check the address"
                    )
                return "0x" + cs
            if isinstance(v, (bytes, bytearray)) and len(v) == 20:
                return "0x" + _checksum(bytes(v).hex(), h)
            raise _BadValue(
                f"invalid address: expected a 0x-hex string of 20 bytes, got {_describe(v)}"
            )

        return norm

    pad = bytes(12)

    def word(c: str) -> bytes:
        return pad + bytes.fromhex(c[2:])

    return _Spec("address", make_norm, word, _identity)


def _parse_int_str(v: str, label: str) -> int:
    try:
        if _DEC_RE.fullmatch(v):
            return int(v)
        if _HEXNUM_RE.fullmatch(v):
            return int(v, 16)
    except ValueError:  # more digits than Python converts: certainly out of range
        raise _BadValue(f"{v[:40]!r}... is out of range for {label}") from None
    raise _BadValue(
        f"invalid {label} {v!r}: expected an integer, a decimal string or a 0x-hex string"
    )


def _int_spec(bits: int, signed: bool) -> _Spec:
    label = f"{'int' if signed else 'uint'}{bits}"
    lo = -(1 << (bits - 1)) if signed else 0
    hi = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
    rng = f"-2**{bits - 1} to 2**{bits - 1}-1" if signed else f"0 to 2**{bits}-1"

    def norm(v: Any) -> int:
        if type(v) is int:
            x = v
        elif isinstance(v, str):
            x = _parse_int_str(v, label)
        elif isinstance(v, (bool, float)) or not hasattr(type(v), "__index__"):
            raise _BadValue(
                f"invalid {label}: expected an integer (int, decimal string or 0x-hex "
                f"string), got {_describe(v)}"
            )
        else:
            x = operator.index(v)  # int subclasses, numpy integers
        if x < lo or x > hi:
            if x < 0 and not signed:
                raise _BadValue(f"invalid {label}: {x} is negative")
            raise _BadValue(f"invalid {label}: {x} is out of range ({rng})")
        return x

    def make_norm(h: Hasher) -> Normaliser:
        return norm

    if signed:

        def word(c: int) -> bytes:
            return c.to_bytes(32, "big", signed=True)

    else:

        def word(c: int) -> bytes:
            return c.to_bytes(32, "big")

    return _Spec(label, make_norm, word, str)


_TRUE_WORD = (1).to_bytes(32, "big")
_FALSE_WORD = bytes(32)


def _bool_spec() -> _Spec:
    def norm(v: Any) -> bool:
        if v is True or v is False:
            return v
        if isinstance(v, str) and v in ("true", "false"):
            return v == "true"
        raise _BadValue(f"invalid bool: expected True or False, got {_describe(v)}")

    def word(c: bool) -> bytes:
        return _TRUE_WORD if c else _FALSE_WORD

    return _Spec("bool", lambda h: norm, word, _identity)


def _fixed_bytes_spec(size: int, label: str) -> _Spec:
    def norm(v: Any) -> bytes:
        if isinstance(v, str):
            if _HEX_RE.fullmatch(v) and len(v) == 2 + 2 * size:
                return bytes.fromhex(v[2:])
        elif isinstance(v, (bytes, bytearray)) and len(v) == size:
            return bytes(v)
        raise _BadValue(
            f"invalid {label}: expected exactly {size} bytes (0x followed by {2 * size} hex "
            f"digits), got {_describe(v)}"
        )

    pad = bytes(32 - size)

    def word(c: bytes) -> bytes:
        return c + pad

    return _Spec(label, lambda h: norm, word, _hex)


def _bytes_spec() -> _Spec:
    def norm(v: Any) -> bytes:
        if isinstance(v, str):
            if _HEX_RE.fullmatch(v):
                return bytes.fromhex(v[2:])
        elif isinstance(v, (bytes, bytearray)):
            return bytes(v)
        raise _BadValue(
            f"invalid bytes: expected bytes or 0x followed by an even number of hex digits, "
            f"got {_describe(v)}"
        )

    return _Spec("bytes", lambda h: norm, None, _hex)


def _string_spec() -> _Spec:
    def norm(v: Any) -> str:
        if not isinstance(v, str):
            raise _BadValue(f"invalid string: expected str, got {_describe(v)}")
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            raise _BadValue(
                f"invalid string {v!r:.60}: not encodable as UTF-8 (lone surrogate)"
            ) from None
        return str(v)

    return _Spec("string", lambda h: norm, None, _identity)


def _array_spec(item: _Spec, length: int | None, label: str) -> _Spec:
    def make_norm(h: Hasher) -> Normaliser:
        item_norm = item.make_norm(h)

        def norm(v: Any) -> tuple:
            if not isinstance(v, (list, tuple)):
                raise _BadValue(f"invalid {label}: expected a list, got {_describe(v)}")
            if length is not None and len(v) != length:
                raise _BadValue(
                    f"invalid {label}: expected exactly {length} elements, got {len(v)}"
                )
            out = []
            for k, x in enumerate(v):
                try:
                    out.append(item_norm(x))
                except _BadValue as e:
                    raise _BadValue(e.msg, f"[{k}]{e.path}") from None
            return tuple(out)

        return norm

    return _Spec(label, make_norm, None)


def _tuple_spec(components: list[_Spec], label: str) -> _Spec:
    def make_norm(h: Hasher) -> Normaliser:
        norms = [c.make_norm(h) for c in components]

        def norm(v: Any) -> tuple:
            if not isinstance(v, (list, tuple)) or len(v) != len(norms):
                raise _BadValue(
                    f"invalid {label}: expected a list of {len(norms)} fields, got {_describe(v)}"
                )
            out = []
            for k, (n, x) in enumerate(zip(norms, v)):
                try:
                    out.append(n(x))
                except _BadValue as e:
                    raise _BadValue(e.msg, f"[{k}]{e.path}") from None
            return tuple(out)

        return norm

    return _Spec(label, make_norm, None)


def _spec_for(t: Any) -> _Spec:
    label = t.to_type_str()
    if t.is_array:
        dims = t.arrlist[-1]
        return _array_spec(_spec_for(t.item_type), dims[0] if dims else None, label)
    if isinstance(t, TupleType):
        return _tuple_spec([_spec_for(c) for c in t.components], label)
    base, sub = t.base, t.sub
    if base == "address" and sub is None:
        return _address_spec()
    if base == "bool" and sub is None:
        return _bool_spec()
    if base == "string" and sub is None:
        return _string_spec()
    if base == "bytes":
        return _bytes_spec() if sub is None else _fixed_bytes_spec(sub, label)
    if base in ("uint", "int") and isinstance(sub, int):
        return _int_spec(sub, base == "int")
    if base in ("fixed", "ufixed"):
        raise ValueError(
            f"{base} types are not supported (@openzeppelin/merkle-tree cannot encode them)"
        )
    raise ValueError("unknown ABI type")


class _LeafCodec:
    """Validates, normalises and encodes values for one leaf encoding."""

    def __init__(self, given: tuple[str, ...]) -> None:
        types: list[str] = []
        specs: list[_Spec] = []
        for j, t in enumerate(given):
            if not isinstance(t, str):
                raise InputError(
                    f"leaf encoding entry {j} must be an ABI type string, got {_describe(t)}"
                )
            try:
                parsed = _parse_type(_normalize_type(t))
                parsed.validate()
                spec = _spec_for(parsed)
            except Exception as e:  # eth_abi ParseError/ABITypeError, our ValueError
                raise InputError(
                    f"leaf encoding entry {j} {t!r} is not a supported ABI type: {e}"
                ) from None
            types.append(spec.label)
            specs.append(spec)
        self.given = given
        self.types = types
        self.specs = specs
        self.json_fns = [s.json for s in specs]
        self.words: list[Callable[[Any], bytes]] | None = (
            [s.word for s in specs] if all(s.word for s in specs) else None  # type: ignore[misc]
        )

    # -- normalisation ------------------------------------------------------------------

    def _shape_error(self, v: Any, where: str) -> InputError:
        k = len(self.specs)
        enc = ", ".join(self.types)
        if isinstance(v, (list, tuple)):
            got = f"{len(v)} field{'s' if len(v) != 1 else ''}"
        else:
            got = _describe(v)
        return InputError(
            f"{where}: expected a list or tuple of {k} field{'s' if k != 1 else ''} "
            f"({enc}), got {got}"
        )

    def normalize_one(self, v: Any, h: Hasher, where: str = "value") -> tuple:
        if not isinstance(v, (list, tuple)) or len(v) != len(self.specs):
            raise self._shape_error(v, where)
        out = []
        for j, (spec, x) in enumerate(zip(self.specs, v)):
            try:
                out.append(spec.make_norm(h)(x))
            except _BadValue as e:
                raise InputError(f"{where}[{j}]{e.path}: {e.msg}", field=j) from None
        return tuple(out)

    def normalize_all(
        self, values: list, h: Hasher, where: Callable[[int], str] = lambda i: f"values[{i}]"
    ) -> list[tuple]:
        k = len(self.specs)
        for i, v in enumerate(values):
            if not isinstance(v, (list, tuple)) or len(v) != k:
                raise self._shape_error(v, where(i))
        norms = [s.make_norm(h) for s in self.specs]
        try:
            cols = [list(map(norm, [v[j] for v in values])) for j, norm in enumerate(norms)]
        except _BadValue:
            for i, v in enumerate(values):  # slow path, only to locate the bad field
                try:
                    self.normalize_one(v, h, where(i))
                except InputError as e:
                    e.details["index"] = i
                    raise
            raise  # pragma: no cover
        return list(zip(*cols))

    # -- encoding and hashing -------------------------------------------------------------

    def encode(self, canon: tuple) -> bytes:
        words = self.words
        if words is not None:
            return b"".join([w(x) for w, x in zip(words, canon)])
        try:
            return _abi_encode(self.types, canon)
        except Exception as e:  # pragma: no cover - values are normalised first
            raise InputError(f"cannot ABI-encode {canon!r:.80} as {self.types}: {e}") from None

    def hash_all(self, canon: list[tuple], hh: Hasher) -> list[bytes]:
        """Leaf hashes of canonical values; ``hh`` is a double keccak256."""
        words = self.words
        if words is None:
            types = self.types
            encoded: Iterable[bytes] = [_abi_encode(types, c) for c in canon]
        elif len(words) == 1:
            w0 = words[0]
            encoded = [w0(c[0]) for c in canon]
        elif len(words) == 2:
            w0, w1 = words
            encoded = [w0(a) + w1(b) for a, b in canon]
        else:
            encoded = [b"".join([w(x) for w, x in zip(words, c)]) for c in canon]
        return list(map(hh, encoded))

    def leaf_hash(self, canon: tuple, h: Hasher) -> bytes:
        return h(h(self.encode(canon)))

    def to_json_all(self, canon: list[tuple]) -> list[list[Any]]:
        fns = self.json_fns
        if len(fns) == 2:
            f0, f1 = fns
            return [[f0(a), f1(b)] for a, b in canon]
        return [[f(x) for f, x in zip(fns, c)] for c in canon]


@lru_cache(maxsize=256)
def _codec_cached(given: tuple[str, ...]) -> _LeafCodec:
    return _LeafCodec(given)


def _codec_for(leaf_encoding: Any, what: str = "leaf_encoding") -> _LeafCodec:
    if isinstance(leaf_encoding, (str, bytes)) or not isinstance(leaf_encoding, Sequence):
        raise InputError(
            f"{what} must be a list of ABI type strings such as ['address', 'uint256'], "
            f"got {_describe(leaf_encoding)}"
        )
    if len(leaf_encoding) == 0:
        raise InputError(f"{what} is empty: name at least one ABI type, e.g. ['address', 'uint256']")
    given = tuple(leaf_encoding)
    try:
        try:
            return _codec_cached(given)
        except TypeError:  # an unhashable entry: let the constructor name it
            return _LeafCodec(given)
    except InputError as e:
        raise InputError(f"{what}: {e.message}") from None


def standard_leaf_hash(leaf_encoding: Sequence[str], value: Sequence[Any]) -> bytes:
    """``keccak256(keccak256(abi.encode(value)))`` as OZ ``standardLeafHash``."""
    h = _hasher()
    codec = _codec_for(leaf_encoding)
    return codec.leaf_hash(codec.normalize_one(value, h), h)


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
