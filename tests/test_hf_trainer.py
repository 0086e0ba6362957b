"""transformers.Trainer as an alternative loop: AttemptOutput is a ModelOutput, AttemptTrainer trains a tiny
model a few steps, saves only the trained part in the library's format, reloads with from_pretrained, resumes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from attempt.config import AttemptConfig
from attempt.data.collate import Collator, make_examples
from attempt.modeling import AttemptModel, AttemptOutput
from attempt.prompts.library import SourcePrompt
from attempt.testing import build_backbone, build_tokenizer
from attempt.training.hf_trainer import AttemptTrainer

ROWS = [
    {"sentence1": "the cat is happy .", "sentence2": "the cat is sad .", "label": 1},
    {"sentence1": "a dog is big .", "sentence2": "a dog is big .", "label": 0},
    {"sentence1": "the man was good .", "sentence2": "the man was not good .", "label": 1},
    {"sentence1": "she is in the house .", "sentence2": "she is in a house .", "label": 0},
] * 4


def _model() -> AttemptModel:
    torch.manual_seed(5)
    sources = [SourcePrompt(name, torch.randn(4, 32), task=name) for name in ("mnli", "qnli")]
    config = AttemptConfig(prompt_length=4, bottleneck_size=8, tasks=("rte",))
    return AttemptModel.from_backbone(build_backbone("seq2seq"), sources, config)


def _trainer(model: AttemptModel, out: Path, max_steps: int):
    from transformers import TrainingArguments

    args = TrainingArguments(
        output_dir=str(out), max_steps=max_steps, per_device_train_batch_size=4, learning_rate=0.3, save_steps=2,
        save_strategy="steps", logging_steps=1, report_to=[], use_cpu=True, disable_tqdm=True, seed=3,
    )  # fmt: skip
    collator = Collator(
        build_tokenizer("seq2seq"), model.family, ["rte"], max_source_length=32, max_target_length=8
    )
    return AttemptTrainer(
        model=model, args=args, train_dataset=make_examples("rte", ROWS), data_collator=collator
    )


def test_attempt_output_reads_by_key_and_position_like_transformers_outputs():
    from transformers.utils import ModelOutput

    out = AttemptOutput(loss=torch.tensor(2.0), logits=torch.ones(1, 3))
    assert (
        isinstance(out, ModelOutput)
        and out["loss"] is out.loss
        and out[0] is out.loss
        and out[1] is out.logits
    )
    assert out.to_tuple() == (
        out.loss,
        out.logits,
    )  # attention_weights is None: left out, as transformers does


def test_trainer_asks_for_the_loss_only_when_it_trains_and_for_the_logits_when_it_evaluates(tmp_path):
    """As attempt's own loop: a training step passes loss_only=True (a decoder then skips most of its LM
    head); an evaluation step (return_outputs=True) gets the full outputs."""
    model = _model()
    trainer = _trainer(model, tmp_path / "out", max_steps=1)
    seen = []

    def record(_, args, kwargs):
        seen.append(kwargs.get("loss_only"))

    model.register_forward_pre_hook(record, with_kwargs=True)
    batch = dict(trainer.data_collator(make_examples("rte", ROWS[:4])))
    loss = trainer.compute_loss(model, dict(batch))
    loss_again, outputs = trainer.compute_loss(model, dict(batch), return_outputs=True)
    assert seen == [True, None]
    torch.testing.assert_close(loss, loss_again)
    assert outputs.logits is not None


@pytest.mark.slow
def test_trainer_trains_saves_only_the_trained_part_and_reloads(tmp_path):
    model = _model()
    before = model.mixture.target_prompts.detach().clone()
    trainer = _trainer(model, tmp_path / "out", max_steps=4)
    trainer.train()
    assert not torch.equal(model.mixture.target_prompts.detach(), before)  # it trained
    assert [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]  # and logged a loss

    trainer.save_model(str(tmp_path / "final"))
    files = sorted(
        str(p.relative_to(tmp_path / "final")) for p in (tmp_path / "final").rglob("*") if p.is_file()
    )
    assert files == [
        "attempt_config.json",
        "attempt_model.safetensors",
        "sources/mnli.json",
        "sources/mnli.safetensors",
        "sources/qnli.json",
        "sources/qnli.safetensors",
        "training_args.bin",
    ]  # no backbone weights
    checkpoint = tmp_path / "out" / "checkpoint-4"
    assert (checkpoint / "attempt_model.safetensors").is_file() and (checkpoint / "optimizer.pt").is_file()
    assert not list(checkpoint.glob("model*.safetensors"))

    loaded = AttemptModel.from_pretrained(build_backbone("seq2seq"), tmp_path / "final").eval()
    model.eval()
    collator = Collator(
        build_tokenizer("seq2seq"), "seq2seq", ["rte"], max_source_length=32, max_target_length=8
    )
    batch = dict(collator(make_examples("rte", ROWS[:4])))
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, loaded(**batch).logits)


class _StopAt(TrainerCallback):
    """Stops training after `step` steps: a run killed after that checkpoint."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        control.should_training_stop = state.global_step >= self.step
        return control


@pytest.mark.slow
def test_trainer_resumes_from_its_checkpoint_to_the_same_weights(tmp_path):
    straight = _model()
    _trainer(straight, tmp_path / "straight", max_steps=4).train()
    interrupted = _trainer(_model(), tmp_path / "resumed", max_steps=4)
    interrupted.add_callback(_StopAt(2))  # a 4-step run (same schedule) killed after its step-2 checkpoint
    interrupted.train()
    again = _model()  # a fresh process: weights come from the checkpoint
    _trainer(again, tmp_path / "resumed", max_steps=4).train(
        resume_from_checkpoint=str(tmp_path / "resumed" / "checkpoint-2")
    )
    for name, tensor in straight.trainable_state_dict().items():
        assert torch.allclose(tensor, again.trainable_state_dict()[name], atol=1e-6), name
