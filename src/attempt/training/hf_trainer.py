"""Training an AttemptModel with `transformers.Trainer` instead of `attempt.training.loop.train`.

`attempt.training.loop` stays the main path: it adds the paper's split protocol, multi-task mixing, evaluation
with rank classification, exact resume and the prompt library. `AttemptTrainer` is for code already built
around Trainer (its callbacks, trackers and arguments)::

    from transformers import TrainingArguments
    from attempt.data.collate import Collator, make_examples
    from attempt.training.hf_trainer import AttemptTrainer

    model = AttemptModel.from_backbone(backbone, PromptLibrary("prompts").load(), tasks=["rte"])
    collator = Collator(tokenizer, model.family, list(model.tasks), max_source_length=256, max_target_length=16)
    trainer = AttemptTrainer(model=model, args=TrainingArguments("out", max_steps=1000, learning_rate=0.3),
                             train_dataset=make_examples("rte", rows), data_collator=collator)
    trainer.train()
    trainer.save_model("out/final")  # the trained weights and the source prompts; not the frozen backbone
    model = AttemptModel.from_pretrained(backbone, "out/final")

What the subclass changes, and why:

- batches reach the model as plain dicts: Trainer rebuilds a batch as ``type(batch)(tensors)``, which
  `attempt.data.collate.Batch` (a dict that also carries its examples) cannot be; and the examples' columns
  ("task", "row") are the collator's input, so ``remove_unused_columns`` is turned off;
- the optimizer is AdamW over `AttemptModel.parameter_groups`: no weight decay on the prompts and the
  LayerNorm, as in `attempt.training.loop`;
- a training step asks the model for its loss only (``loss_only=True``, as `attempt.training.loop` does), so a
  decoder-only backbone runs its LM head on the label positions alone;
- every save (checkpoints, `save_model`) is `AttemptModel.save_pretrained(include_sources=True)`, and
  resuming (``train(resume_from_checkpoint=...)``) and ``load_best_model_at_end`` read that format back.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer

from attempt.modeling.base import WEIGHTS_FILE, AttemptModel
from attempt.utils import reading


class _PlainBatches:
    """A collator whose batches are plain dicts of tensors."""

    def __init__(self, collator: Any):
        self.collator = collator

    def __call__(self, examples: list[Any]) -> dict[str, torch.Tensor]:
        return dict(self.collator(examples))


class AttemptTrainer(Trainer):
    """`transformers.Trainer` for an `AttemptModel`: saves and loads only its trained part (see the module)."""

    def __init__(self, *args: Any, data_collator: Any = None, **kwargs: Any):
        if data_collator is None:
            raise ValueError(
                "AttemptTrainer needs data_collator=attempt.data.collate.Collator(tokenizer, model.family, tasks, ...)."
            )
        super().__init__(*args, data_collator=_PlainBatches(data_collator), **kwargs)
        if not isinstance(self.accelerator.unwrap_model(self.model), AttemptModel):
            raise TypeError(f"AttemptTrainer trains an AttemptModel; got {type(self.model).__name__}.")
        self.args.remove_unused_columns = False
        self.model_accepts_loss_kwargs = False  # the loss is the backbone's mean over label tokens

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        if not return_outputs:  # evaluation asks for the outputs too: they keep their logits
            inputs = {**inputs, "loss_only": True}
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    def create_optimizer(self, model: Any = None) -> torch.optim.Optimizer:
        if self.optimizer is None:
            groups = self.accelerator.unwrap_model(model or self.model).parameter_groups(
                self.args.learning_rate, weight_decay=self.args.weight_decay
            )
            self.optimizer = torch.optim.AdamW(groups, lr=self.args.learning_rate)
        return self.optimizer

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """Write the trained part in the library's format into `output_dir`. save_pretrained replaces the
        folder it writes, and `output_dir` may hold Trainer's checkpoints, so it writes beside them and the
        files are moved in."""
        if not self.args.should_save:
            return
        output_dir = Path(output_dir or self.args.output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        model = self.accelerator.unwrap_model(self.model)
        with tempfile.TemporaryDirectory(dir=output_dir, prefix=".attempt-save.") as tmp:
            model.save_pretrained(Path(tmp) / "model", include_sources=True)
            for item in (Path(tmp) / "model").iterdir():
                target = output_dir / item.name
                if target.is_dir():
                    shutil.rmtree(target)
                os.replace(item, target)
        torch.save(self.args, output_dir / "training_args.bin")  # as Trainer does

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        model = self.accelerator.unwrap_model(model or self.model)
        path = Path(resume_from_checkpoint) / WEIGHTS_FILE
        state = reading.load_safetensors(
            path, f"The checkpoint {resume_from_checkpoint} is damaged: resume from another."
        )
        _, unexpected = model.load_state_dict(state, strict=False)
        if unexpected:
            raise ValueError(f"{path} holds weights this model lacks: {unexpected}.")

    def _load_best_model(self) -> None:
        self._load_from_checkpoint(self.state.best_model_checkpoint)


__all__ = ["AttemptTrainer"]
