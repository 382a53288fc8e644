"""OpenAI request bodies → GenerationParams; what the node does not do is refused by name."""

from __future__ import annotations

import pytest

from loraledger.errors import InputError
from loraledger.serving.protocol import ChatMessage, parse_chat, parse_completion


def test_completion_defaults_and_fields():
    params = parse_completion({"model": "qa", "prompt": "Hi", "max_tokens": 8, "temperature": 0, "stop": "\n",
                               "seed": 7, "logprobs": 2, "user": "ignored"})
    assert (params.model, params.prompt, params.max_tokens, params.temperature, params.stop, params.seed,
            params.logprobs, params.stream) == ("qa", "Hi", 8, 0.0, ("\n",), 7, 2, False)
    assert parse_completion({"model": "qa", "prompt": ["one"]}).prompt == "one"
    assert parse_completion({"model": "qa", "prompt": "x"}).max_tokens == 16


def test_chat_messages_and_limits():
    params = parse_chat({"model": "qa", "messages": [{"role": "developer", "content": "be brief"},
                                                     {"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
                         "max_completion_tokens": 5, "logprobs": True, "top_logprobs": 3, "stream": True,
                         "stream_options": {"include_usage": True}})
    assert params.messages == (ChatMessage("system", "be brief"), ChatMessage("user", "Hi"))
    assert (params.max_tokens, params.logprobs, params.stream, params.include_usage) == (5, 3, True, True)
    assert parse_chat({"model": "qa", "messages": [{"role": "user", "content": "x"}]}).logprobs is None


@pytest.mark.parametrize(("body", "param"), [
    ([], None),
    ({"prompt": "x"}, "model"),
    ({"model": "qa", "prompt": [1, 2]}, "prompt"),
    ({"model": "qa", "prompt": "x", "n": 2}, "n"),
    ({"model": "qa", "prompt": "x", "echo": True}, "echo"),
    ({"model": "qa", "prompt": "x", "temperature": 3}, "temperature"),
    ({"model": "qa", "prompt": "x", "temperature": "hot"}, "temperature"),
    ({"model": "qa", "prompt": "x", "top_p": 0}, "top_p"),
    ({"model": "qa", "prompt": "x", "max_tokens": 0}, "max_tokens"),
    ({"model": "qa", "prompt": "x", "max_tokens": True}, "max_tokens"),
    ({"model": "qa", "prompt": "x", "stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ({"model": "qa", "prompt": "x", "stop": [""]}, "stop"),
    ({"model": "qa", "prompt": "x", "presence_penalty": 1}, "presence_penalty"),
    ({"model": "qa", "prompt": "x", "tools": []}, "tools"),
    ({"model": "qa", "prompt": "x", "stream": "yes"}, "stream"),
    ({"model": "qa", "prompt": "x", "logprobs": 50}, "logprobs"),
])
def test_completion_refusals_name_the_field(body, param):
    with pytest.raises(InputError) as caught:
        parse_completion(body)
    assert caught.value.details.get("param") == param


@pytest.mark.parametrize(("messages", "param"), [
    ([], "messages"),
    ([{"role": "tool", "content": "x"}], "messages[0].role"),
    ([{"role": "user", "content": 5}], "messages[0].content"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}], "messages[0].content"),
    ([{"role": "user", "content": "x", "tool_calls": []}], "messages[0]"),
])
def test_chat_refusals_name_the_field(messages, param):
    with pytest.raises(InputError) as caught:
        parse_chat({"model": "qa", "messages": messages})
    assert caught.value.details.get("param") == param


def test_over_capacity_answers_429_with_retry_after_in_openai_shape():
    import json

    from starlette.requests import Request

    from loraledger.api.errors import error_response
    from loraledger.errors import Overloaded

    scope = {"type": "http", "method": "POST", "path": "/v1/completions", "headers": [], "query_string": b"",
             "scheme": "http", "server": ("127.0.0.1", 8787)}
    response = error_response(Overloaded("64 requests are waiting", retry_after=2), request=Request(scope))
    assert response.status_code == 429 and response.headers["retry-after"] == "2"
    body = json.loads(response.body)
    assert body["error"]["type"] == "rate_limit_error" and body["error"]["code"] == "overloaded"
