"""Activation checkpointing (`TrainConfig.gradient_checkpointing`): its default picked when a run starts (on with
shard_backbone and for the prompt modes over causal and seq2seq backbones: `attempt.config.CHECKPOINTED_FAMILIES`),
an explicit value kept, the value used recorded in the run, old runs that saved ``false`` resuming unchanged, and
the same gradients with it as without."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from attempt.config import TrainConfig
from attempt.modeling import AttemptModel
from attempt.prompts.library import SourcePrompt
from attempt.runs import layout
from attempt.testing import build_backbone, build_tokenizer
from attempt.training.defaults import with_backbone_defaults
from attempt.training.loop import enable_checkpointing, train
from test_train import add_sources, make_config


@pytest.mark.parametrize("family", ["causal", "seq2seq", "encoder"])
def test_an_unset_gradient_checkpointing_is_picked_on_with_shard_backbone(capsys, family):
    sharded = with_backbone_defaults(TrainConfig(shard_backbone=True), family)
    assert sharded.gradient_checkpointing is True
    assert "gradient_checkpointing on (unset, so picked for it" in capsys.readouterr().out
    assert TrainConfig().gradient_checkpointing is None  # "decide for me" until the run starts


@pytest.mark.parametrize(
    ("mode", "family", "picked"),
    [("attempt", "causal", True), ("prompt_tuning", "seq2seq", True), ("spot", "causal", True),
     ("attempt", "encoder", False), ("finetune", "causal", False), ("lora", "seq2seq", False)],
)  # fmt: skip
def test_on_one_device_it_is_picked_on_for_prompt_modes_over_causal_and_seq2seq_backbones(
    capsys, mode, family, picked
):
    """SmolLM2: 0.79x -> 0.43x full fine-tuning's peak memory for 1.27x the step time; an encoder saved nothing."""
    config = with_backbone_defaults(TrainConfig(mode=mode), family)
    assert config.gradient_checkpointing is picked
    assert ("gradient_checkpointing on" in capsys.readouterr().out) is picked


def test_an_unset_gradient_checkpointing_is_off_on_a_backbone_that_cannot_checkpoint():
    picked = with_backbone_defaults(
        TrainConfig(shard_backbone=True), "causal", show=False, checkpointable=False
    )
    assert picked.gradient_checkpointing is False


@pytest.mark.parametrize("shard", [True, False])
@pytest.mark.parametrize("value", [True, False])
def test_an_explicit_gradient_checkpointing_always_wins(shard, value):
    config = TrainConfig(gradient_checkpointing=value, shard_backbone=shard)
    assert with_backbone_defaults(config, "seq2seq", show=False).gradient_checkpointing is value
    assert (
        with_backbone_defaults(config, "causal", show=False, checkpointable=False).gradient_checkpointing
        is value
    )


@pytest.mark.parametrize(
    ("flags", "value"),
    [(["--gradient-checkpointing"], True), (["--no-gradient-checkpointing"], False), ([], None)],
)
def test_the_command_line_flag_sets_it_and_its_absence_leaves_it_to_the_run(flags, value):
    from attempt.cli import build_parser
    from attempt.cli.options import build_config

    args = build_parser().parse_args(["train", "--tasks", "rte", *flags])
    assert build_config(args).gradient_checkpointing is value


def test_a_config_saved_with_gradient_checkpointing_false_reads_back_false():
    saved = {**TrainConfig().to_dict(), "gradient_checkpointing": False}
    assert TrainConfig.from_dict(saved).gradient_checkpointing is False
    assert TrainConfig.from_dict(saved).with_backbone_defaults("causal").gradient_checkpointing is False


@pytest.mark.parametrize(("family", "picked"), [("seq2seq", True), ("encoder", False)])
def test_the_saved_config_records_the_value_the_run_used(tmp_path, data_dir, family, picked):
    config = make_config(tmp_path, data_dir, max_steps=1, eval_every=1, backbone=f"tiny-{family}")
    train(config, backbone=build_backbone(family), tokenizer=build_tokenizer(family), progress=False)
    for folder in (tmp_path / "run", tmp_path / "run" / layout.BEST_DIR):
        assert json.loads((folder / "train_config.json").read_text())["gradient_checkpointing"] is picked


def test_a_run_saved_with_false_resumes_with_the_default_and_ends_as_if_uninterrupted(tmp_path, data_dir):
    """A checkpoint written with gradient_checkpointing false (as every run before the default) resumes with
    it left unset (so picked on for ATTEMPT over a Llama): the same end as the uninterrupted run."""
    add_sources(tmp_path / "lib")
    common = dict(mode="attempt", backbone="tiny-llama", max_steps=4, eval_every=2, learning_rate=0.01)

    def run(folder: str, stop_at: int | None = None, **fields) -> None:
        config = make_config(tmp_path, data_dir, output_dir=str(tmp_path / folder), **common, **fields)

        def stop(step: int, model: torch.nn.Module) -> None:
            if step == stop_at:
                raise KeyboardInterrupt

        backbone, tokenizer = build_backbone("causal"), build_tokenizer("causal")
        train(config, backbone=backbone, tokenizer=tokenizer, progress=False, _on_step=stop)

    run("whole", gradient_checkpointing=False)
    with pytest.raises(KeyboardInterrupt):
        run("resumed", stop_at=2, gradient_checkpointing=False)
    assert (
        json.loads((tmp_path / "resumed" / "train_config.json").read_text())["gradient_checkpointing"]
        is False
    )
    run("resumed")  # a CheckpointMismatch if gradient_checkpointing were not resume-free
    assert not (
        tmp_path / "resumed" / layout.PREVIOUS_METRICS_FILE.format(number=1)
    ).exists()  # not restarted
    records = [
        json.loads(line) for line in (tmp_path / "resumed" / layout.METRICS_FILE).read_text().splitlines()
    ]
    assert [r["step"] for r in records if r["type"] == "train"] == [1, 2, 3, 4]
    got, want = (load_file(str(tmp_path / f / layout.CHECKPOINT_DIR / layout.CHECKPOINT_WEIGHTS_FILE)) for f in ("resumed", "whole"))  # fmt: skip
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=1e-6)


def gradients(checkpointed: bool) -> dict[str, torch.Tensor]:
    """The trainable parameters' gradients of one ATTEMPT loss over a tiny Llama (train mode), with or without
    activation checkpointing."""
    generator = torch.Generator().manual_seed(5)
    sources = [SourcePrompt(n, torch.randn(4, 32, generator=generator), task=n) for n in ("mnli", "qnli")]
    backbone = build_backbone("causal")
    model = AttemptModel.from_backbone(backbone, sources, tasks=["rte"], prompt_length=4, bottleneck_size=8)
    if checkpointed:
        enable_checkpointing(backbone)
    model.train()
    ids = torch.randint(5, 90, (3, 9), generator=generator)
    model(ids, torch.ones_like(ids), labels=ids).loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}


def test_checkpointing_changes_no_gradient():
    plain, checkpointed = gradients(False), gradients(True)
    assert plain.keys() == checkpointed.keys() and plain
    for name in plain:
        assert plain[name].abs().sum() > 0, name
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=0, atol=1e-6)
