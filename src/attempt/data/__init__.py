"""Data: rows from the local mirror, the Hub or your own files; the paper's split protocol and k-shot
sampling; batching (multi-task mixing, a deterministic stream) and collation into model batches.

Layer: above prompts. May import `attempt.utils`, `attempt.config`, `attempt.tasks`, `attempt.backbones`,
`attempt.prompts`.
"""
