"""Leaf values for :mod:`loraledger.crypto.merkle`: hash/hex helpers, JSON value
conversion, ABI type specs (validation, normalisation, 32-byte words), leaf codecs and
``standard_leaf_hash``."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from eth_abi import encode as _abi_encode
from eth_abi.grammar import TupleType
from eth_abi.grammar import normalize as _normalize_type
from eth_abi.grammar import parse as _parse_type

from loraledger.errors import InputError

from .hashing import Hasher, _hasher

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
