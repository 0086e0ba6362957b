"""The run folder, the library's main on-disk format: its layout, config, checkpoints and resume state, the
metrics log, the model card, relative paths, and building a run's model from its config.

Layer: above modeling. May import everything below it (utils, config, tasks, backbones, prompts, data,
mixture, modeling).
"""
