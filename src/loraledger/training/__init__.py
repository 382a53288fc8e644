"""Model factory: base models, LoRA fine-tuning, benchmarks, provenance (edge: torch).

Import submodules directly; importing this package does not import torch.
"""
