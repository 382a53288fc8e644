"""Adapter serving: adapter weights and their residency tiers, the batched multi-LoRA engine
(torch), sampling and scheduling, and their Prometheus metrics. The OpenAI-compatible routes live
in ``api``."""
