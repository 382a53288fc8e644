"""Datanet rows: schemas, strict JSONL parsing, normalisation, row and content hashes."""

from __future__ import annotations

import json

import pytest
import rfc8785
from eth_utils import keccak
from hypothesis import given
from hypothesis import strategies as st

from loraledger.datanets.content import Row, content_hash, normalise_row, normalise_text, parse_rows, row_hash, row_text
from loraledger.errors import InputError


def jsonl(*objs: object) -> bytes:
    return "\n".join(json.dumps(o, ensure_ascii=False) for o in objs).encode()


CHAT = {
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4"},
    ]
}

# ------------------------------------------------------------------------------ schemas


def test_text_rows():
    rows = parse_rows(jsonl({"text": "one"}, {"text": "two"}) + b"\n", "text")
    assert [r.data for r in rows] == [{"text": "one"}, {"text": "two"}]
    assert [r.line for r in rows] == [1, 2]
    assert rows[0] == Row(schema="text", line=1, data={"text": "one"})


def test_instruction_rows():
    rows = parse_rows(jsonl({"prompt": "Hi", "completion": "Hello!"}), "instruction")
    assert rows[0].data == {"prompt": "Hi", "completion": "Hello!"}
    assert row_text(rows[0]) == "hi hello!"


def test_chat_rows():
    rows = parse_rows(jsonl(CHAT), "chat")
    assert rows[0].data == CHAT
    assert row_text(rows[0]) == "be brief. what is 2+2? 4"


def test_crlf_bom_and_blank_lines():
    raw = b"\xef\xbb\xbf" + b'{"text": "a"}\r\n\r\n  \n{"text": "b"}\r\n'
    rows = parse_rows(raw, "text")
    assert [(r.line, r.data["text"]) for r in rows] == [(1, "a"), (4, "b")]


def test_str_input_accepted():
    assert parse_rows('{"text": "é"}', "text")[0].data == {"text": "é"}


# ------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    ("schema", "lines", "message"),
    [
        ("instruction", [{"prompt": "a", "completion": "b"}, {"prompt": "a", "completion": "b"}, {"prompt": "a"}], r"row 3: missing 'completion'"),
        ("text", [{"text": "a", "extra": 1}], r"row 1: unexpected key 'extra'"),
        ("text", [{"text": 5}], r"row 1: 'text' must be a string, got a number"),
        ("text", [{"text": None}], r"'text' must be a string, got null"),
        ("text", [{"text": "   "}], r"row 1: 'text' is empty"),
        ("text", [["text"]], r"row 1: expected a JSON object, got an array"),
        ("text", ["text"], r"expected a JSON object, got a string"),
        ("instruction", [{"prompt": "a", "completion": ["b"]}], r"'completion' must be a string, got an array"),
        ("chat", [{"messages": []}], r"'messages' is empty"),
        ("chat", [{"messages": "hi"}], r"'messages' must be an array"),
        ("chat", [{"messages": [{"role": "user", "content": "hi"}]}], r"at least one assistant message"),
        ("chat", [{"messages": [{"role": "assistant", "content": "hi"}]}], r"at least one user message"),
        ("chat", [{"messages": [{"role": "bot", "content": "x"}]}], r"message 1: role must be one of"),
        ("chat", [{"messages": [{"role": "User", "content": "x"}]}], r"role must be one of .*'User'"),
        ("chat", [{"messages": [{"role": "user"}]}], r"missing 'content'"),
        ("chat", [{"messages": [{"role": "user", "content": "x", "name": "bob"}]}], r"unexpected key 'name'"),
        ("chat", [{"messages": [{"role": "user", "content": 3}]}], r"message 1: 'content' must be a string"),
        ("chat", [{"messages": ["hi"]}], r"message 1 must be an object"),
        ("chat", [{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": ""}]}], r"message 2: 'content' is empty"),
    ],
)
def test_schema_refusals(schema, lines, message):
    with pytest.raises(InputError, match=message):
        parse_rows(jsonl(*lines), schema)


def test_row_too_big():
    ok = {"text": "x" * 100}
    big = {"text": "y" * 40_199}  # 40,211 bytes with its JSON punctuation
    raw = jsonl(*([ok] * 6 + [big]))
    with pytest.raises(InputError, match=r"^row 7: 40,211 bytes, over the 32,768 limit") as info:
        parse_rows(raw, "text")
    assert info.value.details["row"] == 7
    assert len(parse_rows(raw, "text", max_row_bytes=50_000)) == 7


def test_too_many_rows():
    raw = jsonl(*([{"text": "a"}] * 11))
    with pytest.raises(InputError, match="11 rows, over the limit of 10"):
        parse_rows(raw, "text", max_rows=10)


def test_not_utf8():
    with pytest.raises(InputError, match=r"row 2: not valid UTF-8"):
        parse_rows(b'{"text": "a"}\n{"text": "caf\xe9"}', "text")


def test_not_json():
    with pytest.raises(InputError, match=r"row 2: not JSON"):
        parse_rows(b'{"text": "a"}\n{"text": "a"', "text")
    with pytest.raises(InputError, match=r"row 1: NaN is not valid JSON"):
        parse_rows(b'{"text": NaN}', "text")
    with pytest.raises(InputError, match=r"row 1: duplicate key 'text'"):
        parse_rows(b'{"text": "a", "text": "b"}', "text")
    with pytest.raises(InputError, match=r"row 1: 'text' contains a lone surrogate"):
        parse_rows(b'{"text": "\\ud800"}', "text")


def test_empty_upload_and_bad_schema():
    with pytest.raises(InputError, match="no rows"):
        parse_rows(b"\n \n", "text")
    with pytest.raises(InputError, match="unknown row schema 'csv'"):
        parse_rows(b'{"text": "a"}', "csv")
    with pytest.raises(InputError, match="must be bytes"):
        parse_rows(123, "text")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ hashes


def test_normalise_text():
    assert normalise_text("  Hello\t\n  WORLD  ") == "hello world"
    assert normalise_text("Cafe\u0301") == normalise_text("Café") == "café"
    assert normalise_text("Straße") == "strasse"
    assert normalise_text("a\u00a0\u2003b") == "a b"


@pytest.mark.parametrize(
    "variant",
    [
        {"prompt": "What is  the capital of France?", "completion": "Paris."},
        {"prompt": "what is the capital of france?", "completion": "PARIS."},
        {"prompt": " What is the capital\nof France? ", "completion": "\tParis. "},
        {"completion": "Paris.", "prompt": "What is the capital of France?"},  # key order
    ],
)
def test_row_hash_stable_across_variants(variant):
    base = {"prompt": "What is the capital of France?", "completion": "Paris."}
    assert row_hash(variant) == row_hash(base)
    assert len(row_hash(base)) == 32


def test_row_hash_nfc():
    assert row_hash({"text": "Cafe\u0301 au lait"}) == row_hash({"text": "Café au lait"})


@pytest.mark.parametrize(
    "changed",
    [
        {"prompt": "What is the capital of Spain?", "completion": "Paris."},
        {"prompt": "What is the capital of France?", "completion": "Paris!"},
        {"prompt": "What is the capital of France?", "completion": "Par is."},
        {"prompt": "Paris.", "completion": "What is the capital of France?"},
    ],
)
def test_row_hash_changes_with_content(changed):
    base = {"prompt": "What is the capital of France?", "completion": "Paris."}
    assert row_hash(changed) != row_hash(base)


def test_row_hash_of_row_and_dict_agree_and_spec():
    row = parse_rows(jsonl(CHAT), "chat")[0]
    assert row_hash(row) == row_hash(CHAT)
    assert row_hash(row) == keccak(rfc8785.dumps(normalise_row(CHAT)))
    chat_roles_swapped = {"messages": [dict(m) for m in CHAT["messages"]]}
    chat_roles_swapped["messages"][1]["role"] = "assistant"
    chat_roles_swapped["messages"][2]["role"] = "user"
    assert row_hash(chat_roles_swapped) != row_hash(CHAT)


def test_content_hash_covers_original_rows():
    rows = parse_rows(jsonl({"text": "Hello  world"}, {"text": "b"}), "text")
    assert content_hash(rows) == keccak(rfc8785.dumps([{"text": "Hello  world"}, {"text": "b"}]))
    assert content_hash(rows) == content_hash([r.data for r in rows])
    # whitespace matters to the signed content, order too
    assert content_hash(rows) != content_hash([{"text": "Hello world"}, {"text": "b"}])
    assert content_hash(rows) != content_hash(list(reversed(rows)))


_texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
_rows = st.one_of(
    st.builds(lambda t: {"text": t}, _texts),
    st.builds(lambda p, c: {"prompt": p, "completion": c}, _texts, _texts),
    st.builds(
        lambda ms: {"messages": [{"role": r, "content": c} for r, c in ms]},
        st.lists(st.tuples(st.sampled_from(["system", "user", "assistant"]), _texts), min_size=1, max_size=4),
    ),
)


@given(_rows)
def test_row_hash_of_normalised_row_is_row_hash(row):
    assert row_hash(normalise_row(row)) == row_hash(row)


@given(_texts)
def test_normalise_text_idempotent(text):
    once = normalise_text(text)
    assert normalise_text(once) == once
    assert normalise_text("  " + text + "\n") == once


def test_deeply_nested_rows_are_refused_before_parsing():
    deep = ("[" * 10_000 + "]" * 10_000 + "\n").encode()  # within the row size limit
    with pytest.raises(InputError, match="row 1: nested deeper than 64 levels"):
        parse_rows(deep, "text")


def _reference_normalise(text: str) -> str:
    """normalise_text as specified: NFC of the case-folded NFD form, regex whitespace runs to one space."""
    import re
    import unicodedata

    folded = unicodedata.normalize("NFC", unicodedata.normalize("NFD", text).casefold())
    return re.sub(r"\s+", " ", folded).strip()


def test_normalise_text_splits_on_exactly_the_regex_whitespace_at_every_code_point():
    """normalise_text collapses whitespace with str.split(): the same characters as the regex \\s, checked
    for every code point (one differing character would change row hashes)."""
    import re

    space = re.compile(r"\s")
    differing = [hex(cp) for cp in range(0x110000) if bool(space.fullmatch(chr(cp))) != chr(cp).isspace()]
    assert differing == []
    for cp in (0x20, 0x85, 0xA0, 0x1680, 0x2000, 0x2028, 0x3000, 0x1C, 0x1F, 0x200B, 0xFEFF, 0x180E):
        text = f"A{chr(cp)}{chr(cp)}b "
        assert normalise_text(text) == _reference_normalise(text), hex(cp)


@given(st.text(alphabet=st.one_of(st.characters(blacklist_categories=("Cs",)),
                                  st.sampled_from(" \t\n\r\x0b\x0c\x1c\x85\xa0\u2028\u3000ÅåİßΣς\ufb01")), max_size=60))
def test_normalise_text_equals_the_reference(text):
    assert normalise_text(text) == _reference_normalise(text)


@given(_rows)
def test_row_hash_and_text_are_row_hash_and_row_text(row):
    from loraledger.datanets.content import row_hash_and_text

    if "messages" in row:
        parts = [message["content"] for message in row["messages"]]
    else:
        parts = [row[key] for key in ("text", "prompt", "completion") if key in row]
    reference_text = " ".join(part for part in (_reference_normalise(p) for p in parts) if part)
    assert row_hash_and_text(row) == (row_hash(row), row_text(row)) == (row_hash(row), reference_text)
