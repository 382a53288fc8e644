"""The torch / transformers / peft edge of training: base models, the trainer, evaluation,
tensors, tiny models. Imported only when a command trains, evaluates or loads a model."""
