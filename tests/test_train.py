"""The training loop: every mode on tiny backbones and real rows, exact resume, atomic checkpoints, NaN guard,
and (slow) one distributed step against one process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from attempt.config import TrainConfig
from attempt.data.splits import load_task_data
from attempt.evaluation.evaluate import evaluate
from attempt.prompts.library import PromptLibrary, SourcePrompt
from attempt.runs import checkpoint, layout
from attempt.runs.build import load_run
from attempt.runs.state import CheckpointMismatch
from attempt.testing import build_backbone, build_tokenizer
from attempt.training.loop import TrainingDiverged, divergence_advice, train
from attempt.utils import storage
from conftest import REPO

BACKBONE_OF = {"seq2seq": "tiny-t5", "encoder": "tiny-bert", "causal": "tiny-llama"}


def make_config(tmp_path: Path, data_dir: Path, **overrides) -> TrainConfig:
    fields = dict(
        mode="prompt_tuning", backbone="tiny-t5", tasks=("rte",), library=str(tmp_path / "lib"),
        output_dir=str(tmp_path / "run"), data_dir=str(data_dir), attempt={"prompt_length": 4, "bottleneck_size": 8},
        max_steps=2, batch_size=4, eval_batch_size=8, learning_rate=0.3, eval_every=2, train_limit=16,
        eval_limit=8, max_source_length=32, max_target_length=8, seed=7,
    )  # fmt: skip
    fields.update(overrides)
    return TrainConfig(**fields)


def tiny(family: str):
    return build_backbone(family), build_tokenizer(family)


def add_sources(library: Path, names=("mnli", "qnli"), d: int = 32, m: int = 4) -> None:
    lib = PromptLibrary(library)
    for i, name in enumerate(names):
        torch.manual_seed(100 + i)
        lib.add(SourcePrompt(name, torch.randn(m, d) * 0.5, task=name, backbone="tiny"))


def assert_reload_matches(config: TrainConfig, result, family: str) -> None:
    """load_run gives back the best model: it reproduces the best validation metrics exactly."""
    backbone, tokenizer = tiny(family)
    model, _, loaded_config = load_run(config.output_dir, backbone=backbone, tokenizer=tokenizer)
    assert loaded_config.mode == config.mode and loaded_config.tasks == config.tasks
    rows = {t: splits["validation"] for t, splits in load_task_data(config).items()}
    again = evaluate(
        model, tokenizer, rows, method=config.eval_method, batch_size=config.eval_batch_size,
        max_source_length=config.max_source_length, max_target_length=config.max_target_length,
    )  # fmt: skip
    assert again == result.best_metrics
    if result.best_step == result.steps:  # the last checkpoint holds the best weights too
        saved = load_file(str(Path(config.output_dir) / "checkpoint" / layout.CHECKPOINT_WEIGHTS_FILE))
        for name, tensor in model.trainable_state_dict().items():
            assert torch.equal(tensor, saved[name]), name


# --------------------------------------------------------------------------------------------- modes
@pytest.mark.parametrize(
    ("mode", "family", "overrides"),
    [
        ("prompt_tuning", "seq2seq", {}),
        ("spot", "seq2seq", {"source_prompts": ("qnli",)}),
        ("attempt", "seq2seq", {"tasks": ("rte", "cb"), "attention_learning_rate": 0.01, "mixing_cap": 12}),
        ("attempt", "encoder", {"tasks": ("rte", "stsb"), "group_by_length": False}),
        ("prompt_tuning", "causal", {"eval_method": "generate", "pad_to": 48, "max_source_length": 40}),
        ("finetune", "encoder", {"learning_rate": 1e-3}),
        ("lora", "seq2seq", {"learning_rate": 1e-3}),
        ("attempt", "causal", {"backbone_dtype": "bfloat16", "tasks": ("rte", "cb")}),
        ("attempt", "encoder", {"backbone_dtype": "bfloat16"}),
    ],
)
def test_every_mode_trains_saves_and_reloads(tmp_path, data_dir, mode, family, overrides):
    if mode in ("finetune", "lora"):
        pytest.importorskip("attempt.modeling.finetune")
    if mode == "lora":
        pytest.importorskip("peft")
    add_sources(tmp_path / "lib")
    config = make_config(tmp_path, data_dir, mode=mode, backbone=BACKBONE_OF[family], **overrides)
    backbone, tokenizer = tiny(family)
    result = train(config, backbone=backbone, tokenizer=tokenizer, progress=False)
    out = Path(config.output_dir)

    assert result.steps == 2 and result.best_step == 2 and result.trainable_parameters > 0
    assert set(result.best_metrics) == {*config.tasks, "average"}
    assert set(result.test_metrics) == {*config.tasks, "average"}
    for name in ("train_config.json", "metrics.jsonl", "results.json", "test_predictions.jsonl"):
        assert (out / name).is_file(), name
    assert json.loads((out / "train_config.json").read_text())["mode"] == mode
    assert (out / "best" / "train_config.json").is_file()
    assert checkpoint.exists(out / "checkpoint")
    results = json.loads((out / "results.json").read_text())
    assert results["test"] == result.test_metrics and results["best_step"] == 2
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["type"] for r in records] == ["train", "train", "eval", "eval"]
    assert (out / "attention.json").is_file() == (mode == "attempt")
    if "attention_learning_rate" in overrides:  # each parameter group really gets its own learning rate
        lrs = records[0]["lr"]
        assert lrs["attention"] / lrs["prompt"] == pytest.approx(0.01 / 0.3)
    if (
        config.backbone_dtype is not None
    ):  # the frozen backbone in half precision, the trained part in float32
        assert {p.dtype for p in backbone.parameters()} == {torch.bfloat16}
        saved = load_file(str(out / "best" / "attempt_model.safetensors"))
        assert {t.dtype for t in saved.values()} == {torch.float32}
    assert_reload_matches(config, result, family)


def test_training_asks_a_decoder_for_the_logits_of_its_label_positions_only(tmp_path, data_dir):
    """The loop passes loss_only=True: a causal backbone's LM head runs on the few positions that predict a
    label word (logits_to_keep, an index list far shorter than the row), never on the whole row."""
    config = make_config(tmp_path, data_dir, backbone="tiny-llama", max_steps=1, eval_every=1)
    backbone, tokenizer = tiny("causal")
    kept = []
    backbone.register_forward_pre_hook(
        lambda _, args, kwargs: kept.append(kwargs.get("logits_to_keep")), with_kwargs=True
    )
    train(config, backbone=backbone, tokenizer=tokenizer, progress=False)
    training = [keep for keep in kept if isinstance(keep, torch.Tensor)]
    assert len(training) == 1  # one step of one batch; scoring keeps the last position (an int)
    assert 0 < training[0].numel() <= 4 * 3  # 4 rows, at most 3 label tokens each (label word(s) + eos)


def test_backbone_dtype_is_checked():
    with pytest.raises(ValueError, match="backbone_dtype='int8' is not valid"):
        TrainConfig(backbone_dtype="int8")
    with pytest.raises(ValueError, match="mixed_precision='bf16' instead"):
        TrainConfig(mode="finetune", backbone_dtype="bfloat16")
    assert TrainConfig(mode="lora", backbone_dtype="bfloat16").backbone_dtype == "bfloat16"


def test_source_mode_adds_the_best_prompt_to_the_library(tmp_path, data_dir):
    config = make_config(
        tmp_path, data_dir, mode="source", prompt_name="rte.tiny", gradient_checkpointing=True
    )
    backbone, tokenizer = tiny("seq2seq")
    initial = None

    def remember(step, model):
        nonlocal initial
        initial = initial if initial is not None else model.mixture.target_prompts.detach().clone()

    result = train(config, backbone=backbone, tokenizer=tokenizer, progress=False, _on_step=remember)
    prompt = PromptLibrary(config.library).get("rte.tiny")
    best = load_file(str(Path(config.output_dir) / "best" / "attempt_model.safetensors"))
    assert torch.equal(prompt.embeddings, best["mixture.target_prompts"][0])
    assert prompt.task == "rte" and prompt.backbone == "tiny-t5"
    assert prompt.training["best_step"] == result.best_step and prompt.training["learning_rate"] == 0.3
    assert prompt.score == result.best_metrics["rte"]
    # gradient checkpointing on the frozen backbone still trains the prompt
    assert not torch.equal(initial, best["mixture.target_prompts"])


def _never_steps(step, model):
    raise AssertionError("the run trained although it had to be refused first")


def test_source_run_refuses_to_replace_a_library_prompt_before_training(tmp_path, data_dir):
    add_sources(tmp_path / "lib", names=("rte.tiny",))
    before = PromptLibrary(tmp_path / "lib").get("rte.tiny").embeddings
    config = make_config(tmp_path, data_dir, mode="source", prompt_name="rte.tiny")
    with pytest.raises(FileExistsError, match="already has a prompt named 'rte.tiny'.*--overwrite"):
        train(config, backbone=build_backbone("seq2seq"), tokenizer=build_tokenizer("seq2seq"), progress=False,
              _on_step=_never_steps)  # fmt: skip
    assert not Path(config.output_dir).exists()
    assert torch.equal(PromptLibrary(tmp_path / "lib").get("rte.tiny").embeddings, before)
    train(config, backbone=build_backbone("seq2seq"), tokenizer=build_tokenizer("seq2seq"), progress=False,
          overwrite_prompt=True)  # fmt: skip
    assert not torch.equal(PromptLibrary(tmp_path / "lib").get("rte.tiny").embeddings, before)


def test_source_run_checks_the_prompt_name_and_the_library_before_training(tmp_path, data_dir):
    with pytest.raises(ValueError, match="Invalid prompt name '../../x'"):  # TrainConfig itself refuses it
        config = make_config(tmp_path, data_dir, mode="source", prompt_name="../../x")
        train(config, backbone=build_backbone("seq2seq"), tokenizer=build_tokenizer("seq2seq"), progress=False,
              _on_step=_never_steps)  # fmt: skip
    (tmp_path / "not-a-folder").write_text("")
    config = make_config(tmp_path, data_dir, mode="source", library=str(tmp_path / "not-a-folder"))
    with pytest.raises(PermissionError, match="Cannot write to the prompt library .*not-a-folder.*--library"):
        train(config, backbone=build_backbone("seq2seq"), tokenizer=build_tokenizer("seq2seq"), progress=False,
              _on_step=_never_steps)  # fmt: skip
    assert not Path(config.output_dir).exists()


def test_early_stopping_after_patience_evaluations_without_improvement(tmp_path, data_dir):
    config = make_config(
        tmp_path, data_dir, max_steps=10, eval_every=1, early_stopping_patience=2, learning_rate=0.0
    )
    result = train(
        config, backbone=build_backbone("seq2seq"), tokenizer=build_tokenizer("seq2seq"), progress=False
    )
    assert result.steps == 3 and result.best_step == 1  # lr 0: nothing improves after the first evaluation
    assert json.loads((Path(config.output_dir) / "results.json").read_text())["stopped_early"] is True


def test_fp16_without_cuda_is_a_clear_error(tmp_path, data_dir):
    if torch.cuda.is_available():
        pytest.skip("has CUDA")
    backbone, tokenizer = tiny("seq2seq")
    with pytest.raises(ValueError, match="fp16.*CUDA"):
        train(
            make_config(tmp_path, data_dir, mixed_precision="fp16"),
            backbone=backbone,
            tokenizer=tokenizer,
            progress=False,
        )


# -------------------------------------------------------------------------------------------- resume
class Killed(Exception):
    pass


@pytest.mark.parametrize("attempt", [{}, {"centre_inputs": True}])  # the running mean μ resumes too
def test_resumed_run_ends_with_exactly_the_same_weights(tmp_path, data_dir, attempt):
    # encoder attempt: the head's dropout consumes the RNG; 6 steps x 2 micro-batches cross epochs
    common = dict(
        mode="attempt", backbone="tiny-bert", tasks=("rte",), max_steps=6, eval_every=3, batch_size=2,
        gradient_accumulation_steps=2, train_limit=10, warmup_steps=2,
        attempt={"prompt_length": 4, "bottleneck_size": 8, **attempt},
    )  # fmt: skip
    add_sources(tmp_path / "lib")
    full = make_config(tmp_path, data_dir, output_dir=str(tmp_path / "full"), **common)
    train(full, backbone=build_backbone("encoder"), tokenizer=build_tokenizer("encoder"), progress=False)

    cut = make_config(tmp_path, data_dir, output_dir=str(tmp_path / "cut"), **common)

    def kill(step, model):
        if step == 3:
            raise Killed

    with pytest.raises(Killed):
        train(
            cut,
            backbone=build_backbone("encoder"),
            tokenizer=build_tokenizer("encoder"),
            progress=False,
            _on_step=kill,
        )
    assert json.loads((tmp_path / "cut" / "checkpoint" / "state.json").read_text())["step"] == 3
    result = train(
        cut, backbone=build_backbone("encoder"), tokenizer=build_tokenizer("encoder"), progress=False
    )
    assert result.steps == 6

    a = load_file(str(tmp_path / "full" / "checkpoint" / layout.CHECKPOINT_WEIGHTS_FILE))
    b = load_file(str(tmp_path / "cut" / "checkpoint" / layout.CHECKPOINT_WEIGHTS_FILE))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    lines = lambda d: [json.loads(x) for x in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    assert [r["step"] for r in lines("full")] == [r["step"] for r in lines("cut")]

    # a checkpoint of another configuration is refused with a clear message
    other = make_config(
        tmp_path, data_dir, output_dir=str(tmp_path / "cut"), **{**common, "learning_rate": 0.1}
    )
    with pytest.raises(CheckpointMismatch, match="learning_rate.*another output_dir"):
        train(other, backbone=build_backbone("encoder"), tokenizer=build_tokenizer("encoder"), progress=False)


def test_resume_refuses_source_prompts_changed_in_the_library(tmp_path, data_dir):
    add_sources(tmp_path / "lib")
    config = make_config(tmp_path, data_dir, mode="attempt", max_steps=4, eval_every=2)
    library = PromptLibrary(tmp_path / "lib")
    original = library.get("mnli")

    def kill(step, model):
        if step == 2:
            raise Killed

    with pytest.raises(Killed):
        train(
            config,
            backbone=build_backbone("seq2seq"),
            tokenizer=build_tokenizer("seq2seq"),
            progress=False,
            _on_step=kill,
        )
    library.add(
        SourcePrompt("mnli", original.embeddings + 1.0, task="mnli"), overwrite=True
    )  # retrained, same name
    with pytest.raises(CheckpointMismatch, match=r"differ from those .*checkpoint was trained with \(mnli: checkpoint "
                       r"sha256:.* vs library sha256:.*\)\. Put the original prompts back"):  # fmt: skip
        train(
            config, backbone=build_backbone("seq2seq"), tokenizer=build_tokenizer("seq2seq"), progress=False
        )
    library.add(original, overwrite=True)
    (
        Path(config.output_dir) / "checkpoint" / layout.MANIFEST_FILE
    ).unlink()  # as written before hashes were kept
    assert (
        train(
            config, backbone=build_backbone("seq2seq"), tokenizer=build_tokenizer("seq2seq"), progress=False
        ).steps
        == 4
    )


def test_interrupted_checkpoint_write_keeps_the_previous_one(tmp_path, data_dir, monkeypatch):
    config = make_config(tmp_path, data_dir, max_steps=2, eval_every=1)
    real_save = storage.save_file
    armed = {"on": False}

    def flaky_save(tensors, filename, metadata=None):
        if armed["on"] and ".checkpoint." in str(filename):
            Path(filename).write_bytes(b"half a checkpoint")  # a partial write, then the crash
            raise OSError("disk full")
        return real_save(tensors, filename, metadata=metadata)

    monkeypatch.setattr(storage, "save_file", flaky_save)

    def arm(step, model):
        armed["on"] = step == 1

    with pytest.raises(OSError, match="disk full"):
        train(
            config,
            backbone=build_backbone("seq2seq"),
            tokenizer=build_tokenizer("seq2seq"),
            progress=False,
            _on_step=arm,
        )
    ckpt = Path(config.output_dir) / "checkpoint"
    saved = checkpoint.load(ckpt)
    assert saved["state"]["step"] == 1
    assert [p.name for p in ckpt.parent.iterdir() if p.name.startswith(".checkpoint")] == []
    # and the run resumes from it
    armed["on"] = False
    result = train(
        config, backbone=build_backbone("seq2seq"), tokenizer=build_tokenizer("seq2seq"), progress=False
    )
    assert result.steps == 2


def _killed_at_step_1(config: TrainConfig) -> Path:
    """Train `config` until it is killed after step 1 (its checkpoint written); returns the run folder."""

    def kill(step, model):
        if step == 1:
            raise Killed

    with pytest.raises(Killed):
        train(
            config,
            backbone=build_backbone("seq2seq"),
            tokenizer=build_tokenizer("seq2seq"),
            progress=False,
            _on_step=kill,
        )
    return Path(config.output_dir)


def _steps_trained(config: TrainConfig) -> list[int]:
    """Run `config` to the end; the optimizer steps this call did."""
    steps: list[int] = []
    train(config, backbone=build_backbone("seq2seq"), tokenizer=build_tokenizer("seq2seq"), progress=False,
          _on_step=lambda step, model: steps.append(step))  # fmt: skip
    return steps


def test_a_kill_inside_the_checkpoint_swap_resumes_from_the_previous_checkpoint(tmp_path, data_dir):
    config = make_config(tmp_path, data_dir, max_steps=2, eval_every=1)
    run = _killed_at_step_1(config)
    # killed between the two renames of the swap: checkpoint/ moved aside, the new one not yet in place
    os.replace(run / "checkpoint", run / ".checkpoint.old")
    os.replace(run / "best", run / ".best.old")
    (run / ".checkpoint.x1y2.tmp").mkdir()
    (run / ".checkpoint.x1y2.tmp" / "optimizer.pt").write_bytes(b"half")
    assert _steps_trained(config) == [2]  # resumed after step 1, not restarted
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []
    assert checkpoint.load(run / "checkpoint")["state"]["step"] == 2 and (run / "best").is_dir()


def test_an_incomplete_checkpoint_is_an_error_not_a_restart(tmp_path, data_dir):
    config = make_config(tmp_path, data_dir, max_steps=2, eval_every=1)
    run = _killed_at_step_1(config)
    (run / "checkpoint" / layout.RNG_FILE).unlink()
    log = (run / "metrics.jsonl").read_bytes()
    with pytest.raises(checkpoint.IncompleteCheckpoint, match=r"checkpoint is incomplete: it has no rng\.pt\. Delete "
                       r".*checkpoint to restart this run from step 0"):  # fmt: skip
        train(
            config, backbone=build_backbone("seq2seq"), tokenizer=build_tokenizer("seq2seq"), progress=False
        )
    assert (run / "metrics.jsonl").read_bytes() == log  # the history of the run is untouched
    shutil.rmtree(run / "checkpoint")  # the way out the message gives: a restart, the earlier log kept aside
    with pytest.warns(UserWarning, match="restarts from step 0.*metrics.previous-1.jsonl"):
        assert _steps_trained(config) == [1, 2]
    assert (run / "metrics.previous-1.jsonl").read_bytes() == log


def test_a_torn_last_metrics_line_is_dropped_on_resume(tmp_path, data_dir):
    config = make_config(tmp_path, data_dir, max_steps=2, eval_every=1)
    run = _killed_at_step_1(config)
    with open(run / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 2, "type": "tr')  # killed while writing the line
    with pytest.warns(UserWarning, match="dropped its torn last line"):
        assert _steps_trained(config) == [2]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["type"]) for r in records if r.get("split") != "test"] == [
        (1, "train"),
        (1, "eval"),
        (2, "train"),
        (2, "eval"),
    ]
    (run / "metrics.jsonl").write_text(
        '{"step": 1}\nnot json\n{"step": 2}\n'
    )  # damage inside is not guessed at
    with pytest.raises(
        ValueError, match=r"metrics.jsonl line 2 is not a JSON record.*Fix or delete that line"
    ):
        train(
            config, backbone=build_backbone("seq2seq"), tokenizer=build_tokenizer("seq2seq"), progress=False
        )


def test_rerunning_a_finished_run_keeps_one_test_record(tmp_path, data_dir):
    config = make_config(tmp_path, data_dir, max_steps=2, eval_every=1)
    assert _steps_trained(config) == [1, 2]
    assert _steps_trained(config) == []  # finished: nothing to train, the test is evaluated again
    records = [
        json.loads(line) for line in (Path(config.output_dir) / "metrics.jsonl").read_text().splitlines()
    ]
    assert [(r["step"], r["type"], r.get("split")) for r in records if r["type"] == "eval"] == [
        (1, "eval", "validation"),
        (2, "eval", "validation"),
        (2, "eval", "test"),
    ]


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_checkpoint(tmp_path, data_dir):
    config = make_config(tmp_path, data_dir, max_steps=4, eval_every=2)

    def poison(step, model):
        if step == 2:
            with torch.no_grad():
                model.mixture.target_prompts.fill_(float("nan"))

    with pytest.raises(TrainingDiverged, match=r"loss became nan at step 3.*last good checkpoint.*Try: lower the "
                       r"learning rate \(now 0\.3; e\.g\. 0\.03\); and train again") as raised:  # fmt: skip
        train(
            config,
            backbone=build_backbone("seq2seq"),
            tokenizer=build_tokenizer("seq2seq"),
            progress=False,
            _on_step=poison,
        )
    saved = checkpoint.load(Path(config.output_dir) / "checkpoint")
    assert saved["state"]["step"] == 2
    assert all(torch.isfinite(t).all() for t in saved["weights"].values())
    last = json.loads((Path(config.output_dir) / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["type"] == "diverged" and last["step"] == 3
    assert "max_grad_norm" not in str(raised.value)  # clipping is on by default (1.0): suggesting it misleads


@pytest.mark.parametrize(
    ("overrides", "advice"),
    [
        ({"max_grad_norm": 0.0}, "clip gradients (max_grad_norm=1.0)"),
        ({"mixed_precision": "bf16"}, "train without mixed precision (mixed_precision='no', now 'bf16')"),
        (
            {"backbone_dtype": "bfloat16"},
            "keep the backbone in float32 (backbone_dtype=None, now 'bfloat16')",
        ),
    ],
)
def test_divergence_advice_names_only_what_the_run_does_not_do_yet(tmp_path, data_dir, overrides, advice):
    assert advice in divergence_advice(make_config(tmp_path, data_dir, **overrides))


def test_backbone_keyword_and_its_former_name_model(tmp_path, data_dir):
    """train(config, backbone=...) names what it takes; model= (its former name) still works, not both."""
    config = make_config(tmp_path, data_dir, max_steps=1)
    result = train(
        config, model=build_backbone("seq2seq"), tokenizer=build_tokenizer("seq2seq"), progress=False
    )
    assert result.steps == 1
    with pytest.raises(TypeError, match="both backbone= and model="):
        train(config, backbone=build_backbone("seq2seq"), model=build_backbone("seq2seq"), progress=False)


# --------------------------------------------------------------------------------------- distributed
@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path, data_dir):
    """One optimizer step on 2 CPU processes (gloo) equals 1 process at the same global batch."""
    script = Path(__file__).with_name("distributed_step.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    one = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "one"), str(data_dir), "4"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
         str(script), str(tmp_path / "two"), str(data_dir), "2"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    a = load_file(str(tmp_path / "one" / "checkpoint" / layout.CHECKPOINT_WEIGHTS_FILE))
    b = load_file(str(tmp_path / "two" / "checkpoint" / layout.CHECKPOINT_WEIGHTS_FILE))
    start = load_file(str(tmp_path / "one" / "initial.safetensors"))
    assert not torch.equal(
        a["mixture.target_prompts"], start["mixture.target_prompts"]
    )  # the step did something
    assert a.keys() == b.keys()
    # Float tolerance of one AdamW step: each weight moves by lr·g/(|g|+eps). Where a gradient is within a few
    # eps of zero (2e-8 seen on the attention's up-projection), the float32 rounding of g that differs between
    # one batch of 4 and two averaged batches of 2 (~1e-11) moves the step by up to ~lr·eps·δg/(|g|+eps)² ≈ 3e-5;
    # a real fault (unsynchronised processes, a wrong slice of the batch) moves weights by ~lr = 0.3.
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-4 * 0.3)
    state = json.loads((tmp_path / "two" / "checkpoint" / "state.json").read_text())
    assert state["num_processes"] == 2

    # evaluation is sharded: rank r predicted rows i % 2 == r of each split (5 rows: uneven shards), 1 process all
    def predicted(name: str) -> list[list[int]]:
        return [json.loads(line)["indices"] for line in (tmp_path / name).read_text().splitlines()]

    assert predicted("one/predicted-rank0.jsonl") == [[0, 1, 2, 3, 4]] * 2  # validation, test
    assert predicted("two/predicted-rank0.jsonl") == [[0, 2, 4]] * 2
    assert predicted("two/predicted-rank1.jsonl") == [[1, 3]] * 2
    # ... and gathered back: the same metrics, predictions file and attention as one process
    results = [json.loads((tmp_path / run / "results.json").read_text()) for run in ("one", "two")]
    assert results[0]["best_step"] == results[1]["best_step"] == 1
    for key in ("validation", "test", "attention"):
        assert_close_nested(results[1][key], results[0][key])
    assert_close_nested(
        json.loads((tmp_path / "two" / "attention.json").read_text()),
        json.loads((tmp_path / "one" / "attention.json").read_text()),
    )
    evals = [
        [
            r
            for r in map(json.loads, (tmp_path / run / "metrics.jsonl").read_text().splitlines())
            if r["type"] == "eval"
        ]
        for run in ("one", "two")
    ]
    assert [r["split"] for r in evals[0]] == [r["split"] for r in evals[1]] == ["validation", "test"]
    for a_eval, b_eval in zip(*evals, strict=True):
        assert_close_nested(b_eval["metrics"], a_eval["metrics"])
    lines = [(tmp_path / run / "test_predictions.jsonl").read_text().splitlines() for run in ("one", "two")]
    assert len(lines[0]) == len(lines[1]) == 5
    for a_line, b_line in zip(*lines, strict=True):
        a_rec, b_rec = json.loads(a_line), json.loads(b_line)
        assert_close_nested(b_rec.pop("attention_weights"), a_rec.pop("attention_weights"))
        assert b_rec == a_rec  # task, index, idx, source, prediction, reference: identical, same order
    assert [json.loads(line)["index"] for line in lines[1]] == [0, 1, 2, 3, 4]


def assert_close_nested(actual, expected, tol: float = 1e-4) -> None:
    """Equal nested dicts / lists, floats within `tol` (one AdamW step on 2 processes moves weights by ~1e-5)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and actual.keys() == expected.keys(), (actual, expected)
        for key in expected:
            assert_close_nested(actual[key], expected[key], tol)
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), (actual, expected)
        for a, e in zip(actual, expected, strict=True):
            assert_close_nested(a, e, tol)
    elif isinstance(expected, float):
        assert actual == pytest.approx(expected, rel=tol, abs=tol, nan_ok=True)
    else:
        assert actual == expected


def test_sharding_backends_are_refused_with_the_supported_alternative():
    from accelerate.utils import DistributedType

    from attempt.training.devices import check_distributed_type

    for sharded in (DistributedType.FSDP, DistributedType.DEEPSPEED, DistributedType.MEGATRON_LM):
        with pytest.raises(NotImplementedError, match=rf"does not support {sharded.name}.*--multi_gpu"):
            check_distributed_type(sharded)
    for supported in (DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU):
        check_distributed_type(supported)  # no error


@pytest.mark.parametrize("family", ["seq2seq", "causal"])
def test_extractive_qa_source_prompt_trains_and_answers_by_generation(tmp_path, data_dir, family):
    """A SQuAD source prompt on a backbone that generates: trained, scored with EM/F1 on generated answers,
    added to the library (the paper's squad source)."""
    config = make_config(
        tmp_path,
        data_dir,
        mode="source",
        tasks=("squad",),
        backbone=BACKBONE_OF[family],
        max_source_length=48,
        max_target_length=6,
        eval_method="generate",
        eval_limit=4,
        train_limit=8,
    )
    backbone, tokenizer = tiny(family)
    result = train(config, backbone=backbone, tokenizer=tokenizer, progress=False)
    assert set(result.test_metrics["squad"]) == {"squad_exact_match", "squad_f1", "average"}
    assert all(0.0 <= v <= 100.0 for v in result.test_metrics["squad"].values())
    predictions = [
        json.loads(line)
        for line in (Path(config.output_dir) / "test_predictions.jsonl").read_text().splitlines()
    ]
    assert len(predictions) == 4 and all(isinstance(p["prediction"], str) for p in predictions)
    assert all(isinstance(p["reference"], list) and p["reference"] for p in predictions)  # every gold answer
    assert "squad" in PromptLibrary(config.library)


def test_attention_reach_note_says_when_the_attention_cannot_leave_uniform():
    from attempt.config import AttemptConfig
    from attempt.mixture import AttentionalMixture
    from attempt.training.loop import attention_reach_note

    torch.manual_seed(0)
    sources, target = 0.05 * torch.randn(4, 5, 32), 0.05 * torch.randn(5, 32)  # BERT-sized embeddings

    def mixture(**options):
        return AttentionalMixture(AttemptConfig(prompt_length=5, **options), 32, sources, target)

    assert attention_reach_note(None) is None
    assert attention_reach_note(mixture(method="prompt_tuning")) is None
    assert attention_reach_note(mixture(uniform_weights=True)) is None
    paper = attention_reach_note(mixture(temperature="paper"))
    reach = float(paper.split("more than ")[1].split()[0])
    assert 0.2 <= reach < 0.25 and "(uniform: 0.20)" in paper and "sqrt(d) = 5.66" in paper
    sharp = attention_reach_note(mixture(temperature=0.05))
    assert sharp.startswith("[attempt] attention: T = 0.05;") and "sqrt(d)" not in sharp
    auto = attention_reach_note(mixture())  # the default, scaled to the keys: room to move
    assert float(auto.split("more than ")[1].split()[0]) > 0.9 and "sqrt(d)" not in auto


@pytest.mark.parametrize(("family", "backbone_name"), [("causal", "tiny-llama"), ("encoder", "tiny-bert")])
def test_a_bf16_run_with_eval_in_float32_scores_its_rows_as_float32_evaluation_of_its_weights(
    tmp_path, data_dir, monkeypatch, family, backbone_name
):  # causal: rank classification (score_candidates); encoder: its head (the model's forward)
    from attempt.evaluation import inference

    batches: list[dict[int, list[float]]] = []  # each scored batch: {row index: its label scores}
    original = inference.infer_batch

    def recording(model, collator, examples, **kwargs):
        answers = original(model, collator, examples, **kwargs)
        batches.append({e["index"]: a.scores for e, a in zip(examples, answers, strict=True)})
        return answers

    monkeypatch.setattr(inference, "infer_batch", recording)
    config = make_config(tmp_path, data_dir, backbone=backbone_name, eval_method="rank", mixed_precision="bf16",
                         eval_in_float32=True, test_limit=8)  # fmt: skip
    backbone, tokenizer = tiny(family)
    result = train(config, model=backbone, tokenizer=tokenizer, progress=False)
    run = batches[-1]  # the run's last batch: its 8 test rows (eval_batch_size 8), scored by its best model
    assert_reload_matches(config, result, family)  # validation, re-scored in float32: the same metrics
    model, _, _ = load_run(config.output_dir, *tiny(family))
    rows = {"rte": load_task_data(config)["rte"]["test"]}
    again = {}
    for name, autocast in (("float32", None), ("bf16", lambda: torch.autocast("cpu", dtype=torch.bfloat16))):
        evaluate(model, tokenizer, rows, method="rank", batch_size=config.eval_batch_size,
                 max_source_length=config.max_source_length, autocast=autocast)  # fmt: skip
        again[name] = batches[-1]
    assert len(run) == 8 and run == again["float32"]
    assert run != again["bf16"]  # scored under the training's autocast they would differ: the check can fail


def test_eval_in_float32_refuses_a_half_precision_backbone():
    with pytest.raises(ValueError, match="drop backbone_dtype"):
        TrainConfig(eval_in_float32=True, backbone_dtype="bfloat16")
    assert TrainConfig(eval_in_float32=True, backbone_dtype="float32").eval_in_float32


def test_a_checkpoint_saved_before_a_config_field_existed_resumes_when_the_run_keeps_its_default(tmp_path):
    import dataclasses

    from attempt.runs.state import _check_same_run

    current = dataclasses.asdict(TrainConfig())
    older = {k: v for k, v in current.items() if k != "eval_in_float32"}  # a checkpoint of session 11
    _check_same_run(older, current, tmp_path)  # the field's default: the same run
    with pytest.raises(CheckpointMismatch, match="eval_in_float32: checkpoint False vs now True"):
        _check_same_run(older, {**current, "eval_in_float32": True}, tmp_path)
    with pytest.raises(CheckpointMismatch, match="seed"):  # a field the checkpoint has is still compared
        _check_same_run(older, {**current, "seed": 1}, tmp_path)


def test_the_attempt_command_ends_the_process_group_after_it_succeeds_and_keeps_it_after_an_error(
    tmp_path, process_group
):
    """Accelerate starts the group and leaves it to the script's end; a torchrun process that exits with it
    alive can abort in gloo's teardown. After an error it is kept: others may still be in a collective."""
    from attempt.cli import main

    assert main(["train", "--task-file", str(tmp_path / "missing.yaml"), "--print-config"]) == 2
    assert process_group.is_initialized()
    assert main(["tasks"]) == 0
    assert not process_group.is_initialized()
