"""Proof of Attribution: which training rows shaped each answer (scores, spans, the policy, the worker)."""
