"""Adapter serving: adapter weights and their residency tiers, the batched multi-LoRA engine
(torch), sampling and scheduling. The OpenAI-compatible routes live in ``api``."""
