"""The demo's payer asks questions through the official ``openai`` client (one of them streamed) and
prints each answer with its exact spans from the training rows highlighted and the accounts its fee
paid (read back from the node's ``GET /v1/inferences/{hash}`` once the attribution worker is done).

    python scripts/demo_ask.py NODE_URL MODEL --key KEY [--names ADDR=LABEL ...] [--stream] QUESTION...

Every question after ``--stream`` is streamed. Prints the inference hashes, one per line, to the
file named by ``--hashes`` (the demo verifies one of them)."""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request

import openai

OPEN = 10**18


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def settled(node: str, digest: str, timeout: float = 120.0) -> dict:
    """The inference view once its attribution and fee are written."""
    deadline = time.monotonic() + timeout
    while True:
        shown = _get(f"{node}/v1/inferences/{digest}")
        attribution = shown["attribution"]
        if shown["fee"] is not None and (attribution is None or attribution["status"] != "pending"):
            return shown
        if time.monotonic() > deadline:
            raise SystemExit(f"inference {digest}: attribution still pending after {timeout:.0f}s")
        time.sleep(0.3)


def highlighted(text: str, spans: list[dict]) -> str:
    """``text`` with each span in reverse video on a terminal, in ⟦…⟧ otherwise (spans may overlap)."""
    marks = sorted({(s["start"], s["end"]) for s in spans})
    merged: list[list[int]] = []
    for start, end in marks:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    on, off = ("\033[7m", "\033[0m") if sys.stdout.isatty() else ("⟦", "⟧")
    out, at = [], 0
    for start, end in merged:
        out += [text[at:start], on, text[start:end], off]
        at = end
    out.append(text[at:])
    return "".join(out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("node")
    parser.add_argument("model")
    parser.add_argument("--key", required=True)
    parser.add_argument("--names", nargs="*", default=[])
    parser.add_argument("--hashes")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("items", nargs="+", help="questions; --stream before the ones to stream")
    args, extra = parser.parse_known_args()
    names = dict(item.split("=", 1) for item in args.names)
    client = openai.OpenAI(base_url=f"{args.node}/v1", api_key=args.key, max_retries=0, timeout=120)
    questions, stream = [], False
    for item in [*args.items, *extra]:
        if item == "--stream":
            stream = True
            continue
        questions.append((item, stream))
    digests = []
    for question, streamed in questions:
        messages = [{"role": "user", "content": question}]
        print(f"\nQ: {question}{'   (streamed)' if streamed else ''}")
        if streamed:
            print("A: ", end="", flush=True)
            parts, digest = [], None
            for chunk in client.chat.completions.create(model=args.model, messages=messages, max_tokens=args.max_tokens,
                                                        temperature=0, stream=True):
                if chunk.choices and chunk.choices[0].delta.content:
                    parts.append(chunk.choices[0].delta.content)
                    print(chunk.choices[0].delta.content, end="", flush=True)
                digest = (chunk.model_extra or {}).get("inference") or digest
            print()
            text = "".join(parts)
        else:
            completion = client.chat.completions.create(model=args.model, messages=messages,
                                                        max_tokens=args.max_tokens, temperature=0)
            text, digest = completion.choices[0].message.content or "", completion.model_extra["inference"]
        shown = settled(args.node, digest)
        attribution = shown["attribution"]
        spans = attribution["record"]["record"]["spans"] if attribution and attribution.get("record") else []
        print(f"   spans: {highlighted(text, spans)}" if streamed else f"A: {highlighted(text, spans)}")
        fee = shown["fee"]
        print(f"   inference {digest[:18]}…  fee {int(fee['record']['fee']) / OPEN:.6f} OPEN, "
              f"attribution {attribution['status'] if attribution else 'none'}; paid:")
        for share in fee["shares"] or []:
            label = names.get(share["account"], share["account"][:10] + "…")
            print(f"     {label:<16} {'/'.join(share['roles']):<12} {int(share['amount']) / OPEN:.6f} OPEN")
        digests.append(digest)
    if args.hashes:
        with open(args.hashes, "w") as sink:
            sink.write("\n".join(digests) + "\n")


if __name__ == "__main__":
    main()
