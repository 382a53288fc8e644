"""Reward list parsing: accepted shapes and a corpus of bad input, each with a clear error."""

from __future__ import annotations

import pytest

from loraledger.errors import InputError
from loraledger.rewards.lists import RewardRow, parse_reward_list

A = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
B = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"


def test_csv_with_header_comments_and_blank_lines():
    text = f"address,amount\n# a comment\n\n{A},100\n{B.lower()}, 2\n"
    assert parse_reward_list(text) == [RewardRow(A, 100), RewardRow(B, 2)]


def test_csv_without_header():
    assert parse_reward_list(f"{A},5") == [RewardRow(A, 5)]


@pytest.mark.parametrize(
    "text",
    [
        f'[{{"address": "{A}", "amount": "100"}}, {{"account": "{B}", "amount": 2}}]',
        f'[["{A}", 100], ["{B}", "2"]]',
        f'{{"{A}": "100", "{B}": 2}}',
    ],
)
def test_json_shapes(text):
    assert parse_reward_list(text) == [RewardRow(A, 100), RewardRow(B, 2)]


def test_amounts_beyond_2_53_are_exact():
    big = 2**200 + 1
    assert parse_reward_list(f'[["{A}", "{big}"]]')[0].amount == big


BAD = [
    ("", "empty"),
    ("address,amount\n", "empty"),
    ("[]", "empty"),
    (f"{A[:-1]},1", "40 hex digits"),
    ("0xZZ97970C51812dc3A010C7d01b50e0d17dc79C8,1", "40 hex digits"),
    ("alice,1", "40 hex digits"),
    (f"{A[:10] + A[10].swapcase() + A[11:]},1", "checksum"),
    (f"{A},-5", "negative"),
    (f"{A},1.5", "decimal string"),
    (f"{A},1e18", "decimal string"),
    (f"{A},", "decimal string"),
    (f"{A},0", "zero"),
    (f"{A},{2**256}", "uint256"),
    (f"{A},1\n{A.lower()},2", "duplicate account"),
    (f"{A},1,extra", "2 columns"),
    ("address,value\n" + f"{A},1", "header"),
    (f'[{{"address": "{A}", "amount": 1.5}}]', "not a float"),
    (f'[{{"address": "{A}", "amount": true}}]', "not a boolean"),
    (f'[{{"address": "{A}"}}]', "needs 'address' and 'amount'"),
    ('[{"address": 12, "amount": 1}]', "hex string, got int"),
    ('[{"address": ', "not valid JSON"),
    ("[1, 2]", "expected an object"),
]


@pytest.mark.parametrize("text,needle", BAD, ids=[n for _, n in BAD])
def test_bad_reward_lists_name_the_problem(text, needle):
    with pytest.raises(InputError) as info:
        parse_reward_list(text)
    assert needle in str(info.value)


def test_error_names_the_line():
    with pytest.raises(InputError, match="line 3"):
        parse_reward_list(f"address,amount\n{A},1\n{B},-1\n")


def test_json_that_is_not_a_list_or_object():
    with pytest.raises(InputError, match="must be a list"):
        parse_reward_list('"just a string"', fmt="json")


def test_unknown_format():
    with pytest.raises(InputError, match="unknown reward list format"):
        parse_reward_list(f"{A},1", fmt="xml")
