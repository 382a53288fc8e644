"""Projected per-example LoRA gradients (LoGra) equal the projection of each example's own autograd
gradient, computed alone, whatever the batch it shares; projections are seeded and portable."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_peft_adapter

from loraledger.attribution.projection import rademacher, stream_key
from loraledger.errors import InputError
from loraledger.training.data import IGNORE_INDEX, Example
from loraledger.training.hf.tiny import init_tiny_model

peft = pytest.importorskip("peft")


@pytest.fixture(scope="module")
def peft_model(tmp_path_factory):
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("features")
    base = init_tiny_model(root / "tiny", "llama").path
    adapter = make_peft_adapter(base, root / "adapter", seed=3, rank=4, alpha=8,
                                targets=("q_proj", "v_proj", "down_proj"))
    model = peft.PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base)), str(adapter))
    return model.eval()


def examples(seed: int, lengths: list[int], prompt: int = 3) -> list[Example]:
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i, n in enumerate(lengths):
        ids = torch.randint(3, 300, (n,), generator=gen).tolist()
        labels = [IGNORE_INDEX] * min(prompt, n - 1) + ids[min(prompt, n - 1):]
        out.append(Example(f"0x{i:064x}", tuple(ids), tuple(labels)))
    return out


def reference_feature(model, features, example: Example) -> np.ndarray:
    """The example alone: autograd's gradient of its mean token loss, then projected."""
    for param in model.parameters():
        param.grad = None
    weights = [p for layer in features.layers for p in (layer.lora_a.weight, layer.lora_b.weight)]
    for weight in weights:
        weight.requires_grad_(True)
    ids = torch.tensor([example.input_ids])
    labels = torch.tensor([example.labels])
    logits = model(input_ids=ids).logits
    loss = torch.nn.functional.cross_entropy(logits[0, :-1], labels[0, 1:], ignore_index=IGNORE_INDEX)
    loss.backward()
    parts = []
    for layer in features.layers:
        grad_b, grad_a = layer.lora_b.weight.grad, layer.lora_a.weight.grad  # [out, r], [r, in]
        parts += [(layer.p_out @ grad_b).flatten(), (grad_a @ layer.p_in.T).flatten()]
    for weight in weights:
        weight.requires_grad_(False)
        weight.grad = None
    return torch.cat(parts).detach().numpy()


def test_projected_features_equal_each_examples_own_gradient(peft_model):
    from loraledger.attribution.features import LoraGradientFeatures

    features = LoraGradientFeatures(peft_model, k=6, seed=11)
    assert [b.module.rsplit(".", 1)[-1] for b in features.blocks[:3]] == ["q_proj", "v_proj", "down_proj"]
    assert features.dim == sum(2 * 6 * 4 for _ in features.blocks)
    batch = examples(1, [9, 17, 5, 12])
    got = features.features(batch, pad_id=0)
    assert got.shape == (4, features.dim) and got.dtype == np.float32
    for row, example in enumerate(batch):
        expected = reference_feature(peft_model, features, example)
        assert np.abs(got[row] - expected).max() <= 1e-5 * max(1.0, np.abs(expected).max()), row
    # The same example in another batch (other neighbours, other padding) gives the same row.
    again = features.features([batch[2], *examples(2, [30])], pad_id=0)
    assert np.abs(again[0] - got[2]).max() <= 1e-5 * np.abs(got[2]).max()
    assert np.abs(got[0] - got[1]).max() > 1e-3  # different examples, different gradients
    # Nothing left behind: the adapter stays frozen and gradient-free.
    assert all(not p.requires_grad and p.grad is None for n, p in peft_model.named_parameters() if "lora_" in n)


def test_features_refuse_what_has_no_gradient(peft_model):
    from loraledger.attribution.features import LoraGradientFeatures

    features = LoraGradientFeatures(peft_model, k=4)
    unlabelled = Example("0x" + "00" * 32, (5, 6, 7), (IGNORE_INDEX,) * 3)
    with pytest.raises(InputError, match="no labelled token"):
        features.features([unlabelled], pad_id=0)
    with pytest.raises(InputError, match="no LoRA layers of adapter 'other'"):
        LoraGradientFeatures(peft_model, adapter="other")
    assert features.features([], pad_id=0).shape == (0, features.dim)


def test_projections_are_seeded_portable_and_rademacher():
    a = rademacher(7, "model.layers.0.self_attn.q_proj:in", 16, 64)
    assert a.shape == (16, 64) and set(np.unique(a).tolist()) == {-0.25, 0.25}
    assert np.array_equal(a, rademacher(7, "model.layers.0.self_attn.q_proj:in", 16, 64))
    assert not np.array_equal(a, rademacher(8, "model.layers.0.self_attn.q_proj:in", 16, 64))
    assert not np.array_equal(a, rademacher(7, "model.layers.0.self_attn.q_proj:out", 16, 64))
    # Pinned values: the generator is part of the index format (any change breaks old indexes).
    assert stream_key(7, "x") == int.from_bytes(
        __import__("hashlib").sha256(b"loraledger-projection-v1\x007\x00x").digest()[:8], "little")
    assert (rademacher(7, "x", 2, 8) * np.sqrt(2)).round().astype(int).tolist() == PINNED
    # Inner products are kept in expectation (Johnson-Lindenstrauss), roughly at this width.
    gen = np.random.default_rng(0)
    u, v = gen.normal(size=512), gen.normal(size=512)
    p = rademacher(1, "jl", 256, 512, dtype=np.float64)
    assert abs((p @ u) @ (p @ v) - u @ v) < 0.25 * np.linalg.norm(u) * np.linalg.norm(v)
    with pytest.raises(ValueError):
        rademacher(-1, "x", 2, 2)


PINNED = [[1, 1, -1, 1, -1, -1, -1, 1], [1, 1, 1, -1, 1, 1, 1, -1]]


def test_one_mixed_adapter_pass_gives_each_adapters_own_gradients(peft_model):
    """``features_under`` runs the examples under several adapters of one model in one pass (PEFT's
    mixed-adapter batch): each adapter's rows equal autograd's gradient under that adapter alone,
    whichever adapter is active."""
    from loraledger.attribution.features import LoraGradientFeatures, features_under

    peft_model.add_adapter("second", peft_model.peft_config["default"])
    try:
        with torch.no_grad():
            gen = torch.Generator().manual_seed(5)
            for name, param in peft_model.named_parameters():
                if ".second." in name:
                    param.copy_(torch.randn(param.shape, generator=gen) * 0.05)
        peft_model.set_adapter("default")
        first = LoraGradientFeatures(peft_model, k=6, seed=11)
        second = LoraGradientFeatures(peft_model, adapter="second", k=6, seed=11)
        batch = examples(4, [8, 13])
        got_first, got_second = features_under([first, second], batch, pad_id=0)
        assert np.abs(got_first - got_second).max() > 1e-3  # other weights, other gradients
        for extractor, got, adapter in ((first, got_first, "default"), (second, got_second, "second")):
            peft_model.set_adapter(adapter)
            for row, example in enumerate(batch):
                expected = reference_feature(peft_model, extractor, example)
                assert np.abs(got[row] - expected).max() <= 1e-5 * max(1.0, np.abs(expected).max()), (adapter, row)
    finally:
        peft_model.set_adapter("default")
        peft_model.delete_adapter("second")
