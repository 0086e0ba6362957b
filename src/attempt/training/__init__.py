"""Training: the one loop on Accelerate, the devices a run uses, the checks it passes before any weight
loads, and the `transformers.Trainer` adapter.

Layer: above evaluation. May import everything below it.
"""
