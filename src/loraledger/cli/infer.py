"""`loraledger infer MODEL "prompt"`: ask a running node's OpenAI-compatible API, as a payer."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from ._common import JsonOption, NodeUrlOption, _client_of_node, _echo_json, _settings


def infer(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="An adapter's name, or the base model's (GET /v1/models).")],
    prompt: Annotated[str, typer.Argument(help="The prompt (a user message with --chat).")],
    chat: Annotated[bool, typer.Option("--chat", help="Send it as a chat message (the model's chat template).")] = False,
    stream: Annotated[bool, typer.Option("--stream", help="Print the answer as it is generated.")] = False,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1)] = 64,
    temperature: Annotated[float, typer.Option(min=0.0, max=2.0)] = 0.0,
    seed: Annotated[int | None, typer.Option(min=0)] = None,
    node_url: NodeUrlOption = None,
    key_env: Annotated[str, typer.Option("--key-env", help="Environment variable holding the API key.")] =
        "LORALEDGER_API_KEY",
    as_json: JsonOption = False,
) -> None:
    """Generate an answer; it is recorded and paid for by the key's payer (its inference hash is printed)."""
    client = _client_of_node(_settings(ctx), node_url, timeout=600)
    body: dict = {"model": model, "max_tokens": max_tokens, "temperature": temperature, "stream": True,
                  "stream_options": {"include_usage": True}}
    if seed is not None:
        body["seed"] = seed
    if chat:
        body["messages"] = [{"role": "user", "content": prompt}]
    else:
        body["prompt"] = prompt
    text, final = [], {}
    for chunk in client.stream("/v1/chat/completions" if chat else "/v1/completions", body,
                               api_key=os.environ.get(key_env)):
        if "error" in chunk:
            raise typer.Exit(_fail(chunk["error"]["message"]))
        for choice in chunk.get("choices", []):
            piece = (choice.get("delta") or {}).get("content") if chat else choice.get("text")
            if piece:
                text.append(piece)
                if stream and not as_json:
                    typer.echo(piece, nl=False)
        final.update({k: v for k, v in chunk.items() if k in ("inference", "usage", "model")})
    if as_json:
        _echo_json({"text": "".join(text), **final})
        return
    if stream:
        typer.echo()
    else:
        typer.echo("".join(text))
    usage = final.get("usage") or {}
    typer.echo(f"[{final.get('model', model)}: {usage.get('prompt_tokens', '?')} prompt + "
               f"{usage.get('completion_tokens', '?')} completion tokens; inference {final.get('inference')}]", err=True)


def _fail(message: str) -> int:
    typer.echo(f"error: {message}", err=True)
    return 1
