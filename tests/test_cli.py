"""The `attempt` command line: options generated from TrainConfig, one-line errors, every recipe, and the
whole pipeline (train-source → train → evaluate → predict → plot) on a tiny random T5 and the real mirror."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import yaml

from attempt import cli
from attempt.config import AttemptConfig, TrainConfig
from attempt.prompts.library import PromptLibrary
from attempt.tasks import get_task, list_tasks
from attempt.testing import build_backbone, build_tokenizer
from conftest import REPO

RECIPES = sorted((REPO / "configs").rglob("*.yaml"))


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def resolved(capsys, *argv: str) -> dict:
    code, out, err = run(capsys, *argv, "--print-config")
    assert code == 0, err
    return yaml.safe_load(out)


# ------------------------------------------------------------------------------------------------ help
@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_every_command_has_help(capsys, command):
    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    assert out.startswith(f"usage: attempt {command}")
    run_function = cli.COMMANDS[command][1]
    assert run_function.__doc__.split("\n")[0].strip()[:40] in " ".join(out.split())


@pytest.mark.parametrize("action", ["list", "add", "remove", "rename", "import", "export"])
def test_every_prompts_action_has_help(capsys, action):
    code, out, _ = run(capsys, "prompts", action, "--help")
    assert code == 0 and out.startswith(f"usage: attempt prompts {action}")


@pytest.mark.parametrize("command", ["train", "train-source"])
def test_train_help_documents_every_config_field(capsys, command):
    _, out, _ = run(capsys, command, "--help-all")  # --help shows a first run's options (test_newcomer_ux)
    out = " ".join(out.split())  # argparse wraps to the terminal width
    # mappings: `attempt` through --attempt.<key>, `task_definitions` through --task-file, `data_files` through
    # --train-file / --validation-file / --test-file and --columns
    mappings = ("attempt", "task_definitions", "data_files")
    fields = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in mappings]
    assert "--task-file TASK.yaml" in out
    for option in (
        "--train-file [TASK=]FILE",
        "--validation-file [TASK=]FILE",
        "--test-file [TASK=]FILE",
        "--columns [TASK:]COLUMN=FIELD",
    ):
        assert option in out, option
    if command == "train-source":
        fields.remove("mode")  # fixed to "source"
        assert "--mode" not in out
    nested = [
        f"attempt.{f.name}" for f in dataclasses.fields(AttemptConfig) if f.name not in ("method", "tasks")
    ]
    for key in fields + nested:
        assert f"[{key}; default:" in out, key
        assert f"--{key.replace('_', '-')} " in out or f"--{key.replace('_', '-')} /" in out, key


def test_every_config_field_has_docstring_help():
    for cls in (TrainConfig, AttemptConfig):
        docs = cli.attribute_docs(cls)
        assert {f.name for f in dataclasses.fields(cls)} <= set(docs), cls
        assert all(docs.values()), cls


# ------------------------------------------------------------------------------------------- overrides
def test_options_override_the_recipe_and_set_overrides_both(capsys, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "mode: attempt\ntasks: [rte]\nmax_steps: 10\nbatch_size: 8\nattempt:\n  pooling: mean\n  prompt_length: 7\n"
    )
    config = resolved(
        capsys,
        "train",
        "--config",
        recipe,
        "--max-steps",
        "5",
        "--tasks",
        "rte",
        "mrpc",
        "--no-group-by-length",
        "--pad_to",
        "none",
        "--attempt.prompt-length",
        "9",
        "--set",
        "attempt.prompt_length=3",
        "--set",
        "learning_rate=1e-2",
        "--set",
        "source_prompts=[mnli, qnli]",
        "--attempt.num-labels",
        "2",
    )
    assert config["max_steps"] == 5 and config["batch_size"] == 8
    assert config["tasks"] == ["rte", "mrpc"] and config["source_prompts"] == ["mnli", "qnli"]
    assert config["group_by_length"] is False and config["pad_to"] is None
    assert config["learning_rate"] == 0.01
    assert config["attempt"] == {"pooling": "mean", "prompt_length": 3, "num_labels": 2}


def test_train_source_fixes_the_mode(capsys, tmp_path):
    assert resolved(capsys, "train-source", "--tasks", "sst2")["mode"] == "source"
    recipe = tmp_path / "r.yaml"
    recipe.write_text("mode: attempt\n")
    code, _, err = run(capsys, "train-source", "--config", recipe, "--tasks", "sst2")
    assert code == 2 and "mode 'attempt'" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--set", "bogus=1"],
            "Unknown TrainConfig key(s): bogus. Valid keys: attempt, attention_learning_rate,",
        ),
        (
            ["--set", "attempt.bogus=1"],
            "Unknown attempt key(s): bogus. Valid keys: attention_init, bottleneck_size,",
        ),
        (["--set", "max_steps.x=1"], "Cannot set 'max_steps.x': 'max_steps' is not a mapping of keys."),
        (["--set", "bogus.x=1"], "Unknown TrainConfig key(s): bogus. Valid keys:"),
        (["--set", "max_steps"], "--set expects key=value"),
        (["--set", "backbone=[a,b]"], "TrainConfig key 'backbone' must be str; got a list ['a', 'b']"),
        (["--mode", "bogus"], "mode='bogus' is not valid. Choose one of: source, attempt,"),
        (["--tasks", "rtee"], "Unknown task 'rtee'. Known tasks: boolq,"),
        (["--config", "no/such.yaml"], "No such recipe file: no/such.yaml"),
        (["--max-steps", "many"], "argument --max-steps/--max_steps: expected an int, got 'many'"),
    ],
)
def test_user_errors_are_one_line_with_exit_code_2(capsys, argv, message):
    code, out, err = run(capsys, "train", *argv, "--print-config")
    assert code == 2 and out == ""
    assert message in err
    assert "Traceback" not in err
    assert len([line for line in err.splitlines() if "error" in line]) == 1


def test_unknown_key_in_a_recipe_lists_the_valid_ones(capsys, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("mode: attempt\nmax_step: 10\n")
    code, _, err = run(capsys, "train", "--config", recipe)
    assert code == 2
    valid = ", ".join(sorted(f.name for f in dataclasses.fields(TrainConfig)))
    assert err.strip() == f"attempt train: error: Unknown TrainConfig key(s): max_step. Valid keys: {valid}."


def test_other_commands_report_missing_inputs(capsys, tmp_path):
    assert run(capsys, "evaluate", tmp_path / "none")[0] == 2
    assert (
        run(capsys, "predict", tmp_path / "none", "--inputs", tmp_path / "x.jsonl", "--output", "y")[0] == 2
    )
    code, _, err = run(capsys, "plot", tmp_path)
    assert code == 2 and "neither attention.json nor metrics.jsonl" in err
    code, _, err = run(capsys, "evaluate", tmp_path)
    assert code == 2 and "is not a finished training run" in err


# ---------------------------------------------------------------------------------------------- recipes
def test_the_recipes_are_there():
    names = {str(p.relative_to(REPO / "configs")) for p in RECIPES}
    paper = {f"paper/source_{t}.yaml" for t in ("mnli", "qqp", "qnli", "sst2", "squad", "record")}
    paper |= {f"paper/attempt_{n}.yaml" for n in ("glue", "superglue", "rte", "fewshot_boolq")}
    cpu = {f"cpu/{n}.yaml" for n in ("minilm_source_sst2", "minilm_attempt_rte", "smollm2_attempt_rte")}
    assert paper | cpu <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(REPO / "configs")))
def test_every_recipe_validates(path):
    config = TrainConfig.from_yaml(path)
    config.attempt_config()
    for task in config.tasks:
        get_task(task)
    hints = typing.get_type_hints(TrainConfig)
    for name in ("learning_rate", "weight_decay", "max_grad_norm", "mixing_temperature"):
        assert type(getattr(config, name)) is float, name  # PyYAML reads `1e-5` as a string: write 1.0e-5
    for name in ("max_steps", "batch_size", "eval_every", "max_source_length"):
        hint = int | None if name == "batch_size" else int  # batch_size None: picked for the backbone
        assert type(getattr(config, name)) is int and hints[name] == hint, name
    lines = path.read_text().splitlines()
    head = lines[: next(i for i, line in enumerate(lines) if not line.startswith("#"))]
    assert len(head) >= 2
    command = "train-source" if config.mode == "source" else "train"
    assert any(
        f"attempt {command} --config configs/{path.relative_to(REPO / 'configs')}" in line for line in head
    )
    if path.parent.name == "paper":
        assert config.backbone == "google-t5/t5-base"
        assert (config.batch_size, config.learning_rate, config.attempt["prompt_length"]) == (32, 0.3, 100)
        assert config.max_source_length == (512 if config.tasks[0] in ("squad", "record") else 256)


def test_glue_recipe_trains_the_eight_glue_tasks():
    config = TrainConfig.from_yaml(REPO / "configs/paper/attempt_glue.yaml")
    assert sorted(config.tasks) == ["cola", "mnli", "mrpc", "qnli", "qqp", "rte", "sst2", "stsb"]
    assert sorted(config.source_prompts) == ["mnli", "qnli", "qqp", "record", "squad", "sst2"]


# ------------------------------------------------------------------------------------------------ tasks
def test_tasks_lists_the_registry(capsys):
    code, out, _ = run(capsys, "tasks")
    assert code == 0
    listed = [line.split()[0] for line in out.splitlines()[2:]]
    assert listed == list_tasks()
    assert "nyu-mll/glue/rte  " in out and "2,490" in out


def test_tasks_shows_one_task_with_an_example(capsys, data_dir):
    code, out, _ = run(capsys, "tasks", "--task", "rte", "--data-dir", data_dir)
    assert code == 0
    assert "labels               0=entailment, 1=not_entailment" in out
    assert "source: rte sentence1: " in out and "target: " in out
    assert run(capsys, "tasks", "--task", "rtee")[0] == 2


# ---------------------------------------------------------------------------------------------- prompts
def test_prompts_round_trip(capsys, tmp_path, original_prompts_dir):
    lib = ["prompts", "--library", tmp_path / "lib"]
    code, out, _ = run(capsys, *lib, "list")
    assert code == 0 and "No prompts" in out
    original = original_prompts_dir / "record_prefix_embeddings.t5-base.pt"
    code, out, err = run(
        capsys, *lib, "import", original, "--name", "record", "--task", "record", "--backbone", "t5-base"
    )
    assert code == 0, err
    assert "100×768, original format" in out
    code, out, _ = run(capsys, *lib, "export", "record", tmp_path / "peft", "--task-type", "SEQ_2_SEQ_LM")
    assert code == 0 and sorted(p.name for p in (tmp_path / "peft").iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    assert (
        json.loads((tmp_path / "peft/adapter_config.json").read_text())["base_model_name_or_path"]
        == "t5-base"
    )
    assert (
        run(capsys, *lib, "import", tmp_path / "peft", "--name", "again")[0] == 0
    )  # PEFT detected from the folder
    assert run(capsys, *lib, "add", "copy", tmp_path / "peft/adapter_model.safetensors")[0] == 0
    assert run(capsys, *lib, "rename", "again", "record.peft")[0] == 0
    code, out, _ = run(capsys, *lib, "list", "--json")
    entries = {e["name"]: e for e in json.loads(out)}
    assert sorted(entries) == ["copy", "record", "record.peft"]
    assert entries["record"]["hash"] == entries["record.peft"]["hash"]  # the PEFT round trip is exact
    assert entries["copy"]["length"] == 200  # a seq2seq adapter stores encoder and decoder rows
    assert run(capsys, "prompts", "remove", "copy", "--library", tmp_path / "lib")[0] == 0
    assert PromptLibrary(tmp_path / "lib").names() == ["record", "record.peft"]
    code, _, err = run(capsys, *lib, "remove", "copy")
    assert code == 2 and err.strip() == (
        f"attempt prompts: error: No source prompt 'copy' in library {tmp_path / 'lib'}. It has: record, record.peft."
    )
    assert run(capsys, *lib, "rename", "record", "record.peft")[0] == 2
    assert run(capsys, *lib, "import", tmp_path / "missing.pt", "--name", "x")[0] == 2


def test_train_source_refuses_a_taken_or_bad_prompt_name_before_loading_anything(capsys, tmp_path):
    import torch

    from attempt.prompts.library import SourcePrompt

    PromptLibrary(tmp_path / "lib").add(SourcePrompt("rte", torch.ones(2, 4)))
    mirror = tmp_path / "mirror" / "nyu-mll" / "glue" / "rte"  # the data are read before the backbone loads
    mirror.mkdir(parents=True)
    row = '{"sentence1": "a", "sentence2": "b", "label": 0, "idx": 0}\n'
    for split in ("train", "validation"):
        (mirror / f"{split}.jsonl").write_text(row * 2)
    common = [
        "--library",
        tmp_path / "lib",
        "--backbone",
        tmp_path / "no-such-backbone",
        "--output-dir",
        tmp_path / "run",
        "--data-dir",
        tmp_path / "mirror",
    ]
    code, _, err = run(capsys, "train-source", "--tasks", "rte", *common)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "already has a prompt named 'rte'" in err and "--overwrite" in err
    code, _, err = run(capsys, "train-source", "--tasks", "rte", "--prompt-name", "../../x", *common)
    assert code == 2 and "Invalid prompt name '../../x'" in err
    code, _, err = run(capsys, "train-source", "--tasks", "rte", "--overwrite", *common)
    assert code == 2 and "no-such-backbone" in err  # with --overwrite the name is fine: the backbone is next


# ---------------------------------------------------------------------------------------- end to end
EVAL_FILES = ["eval_validation.json", "eval_validation_attention.json", "eval_validation_predictions.jsonl"]
RUN_FILES = {
    "best",
    "checkpoint",
    "metrics.jsonl",
    "results.json",
    "test_predictions.jsonl",
    "train_config.json",
}


def _run_files(run_dir: Path) -> set[str]:
    return {p.name for p in run_dir.iterdir()} - {"tensorboard"}  # tensorboard/ only when it is installed


@pytest.mark.slow
@pytest.mark.data
def test_the_pipeline_end_to_end(capsys, tmp_path, data_dir):
    backbone = tmp_path / "tiny-t5"
    build_backbone("seq2seq").save_pretrained(backbone)
    build_tokenizer("seq2seq").save_pretrained(backbone)
    small = ["--backbone", backbone, "--data-dir", data_dir, "--library", tmp_path / "lib", "--max-steps", "2",
             "--batch-size", "4", "--eval-every", "2", "--train-limit", "16", "--eval-limit", "8",
             "--attempt.prompt-length", "4", "--quiet"]  # fmt: skip

    code, out, err = run(capsys, "train-source", "--tasks", "sst2", "--output-dir", tmp_path / "src", *small)
    assert code == 0, err
    assert _run_files(tmp_path / "src") == RUN_FILES
    assert "Source prompt 'sst2' added to the library" in out
    assert PromptLibrary(tmp_path / "lib").names() == ["sst2"]

    recipe = tmp_path / "rte.yaml"
    recipe.write_text("mode: attempt\ntasks: [rte]\nsource_prompts: [sst2]\nmax_steps: 1000\n")
    code, out, err = run(capsys, "train", "--config", recipe, "--output-dir", tmp_path / "rte", *small)
    assert code == 0, err
    run_dir = tmp_path / "rte"
    assert _run_files(run_dir) == RUN_FILES | {"attention.json"}
    saved = TrainConfig.from_dict(json.loads((run_dir / "train_config.json").read_text()))
    assert (saved.mode, saved.tasks, saved.source_prompts, saved.max_steps) == (
        "attempt",
        ("rte",),
        ("sst2",),
        2,
    )
    assert saved.attempt == {"prompt_length": 4} and saved.backbone == str(backbone)
    assert saved.library == "../lib" and saved.output_dir == "."  # relative to the run folder: it can move
    assert set(json.loads((run_dir / "attention.json").read_text())["rte"]) == {"sst2", "target"}
    assert "validation (best):" in out and "rte   accuracy" in out

    code, out, err = run(capsys, "evaluate", run_dir, "--split", "validation", "--out", tmp_path / "eval")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == EVAL_FILES
    metrics = json.loads((tmp_path / "eval/eval_validation.json").read_text())
    assert set(metrics) == {"rte", "average"} and "accuracy" in metrics["rte"]
    lines = (tmp_path / "eval/eval_validation_predictions.jsonl").read_text().splitlines()
    assert len(lines) == 8  # eval_limit of the run
    assert f"rte   accuracy  {metrics['rte']['accuracy']:.4f}" in out

    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text(
        '{"task": "rte", "sentence1": "the cat is happy .", "sentence2": "the cat is sad ."}\n'
        '{"task": "rte", "sentence1": "a dog", "sentence2": "a dog", "label": 0}\n'
    )
    code, out, err = run(
        capsys, "predict", run_dir, "--inputs", inputs, "--output", tmp_path / "out/pred.jsonl"
    )
    assert code == 0, err
    predictions = [json.loads(line) for line in (tmp_path / "out/pred.jsonl").read_text().splitlines()]
    assert [p["index"] for p in predictions] == [0, 1]
    assert all(p["prediction"] in ("entailment", "not_entailment") for p in predictions)
    assert predictions[1]["reference"] == "entailment" and set(predictions[0]["attention_weights"]) == {
        "sst2",
        "target",
    }
    inputs.write_text('{"task": "sst2", "sentence": "good"}\n')
    code, _, err = run(capsys, "predict", run_dir, "--inputs", inputs, "--output", tmp_path / "bad.jsonl")
    assert code == 2 and "not one of the model's tasks" in err

    code, out, err = run(capsys, "plot", run_dir, "--out", tmp_path / "plots")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "attention.png",
        "attention_examples.png",  # each test example's attention, drawn for any ATTEMPT run
        "training_curves.png",
    ]
    assert f"Attention heatmap: {tmp_path / 'plots/attention.png'}" in out


def test_the_console_entry_point_runs():
    done = subprocess.run(
        [sys.executable, "-m", "attempt.cli", "tasks", "--task", "nope"], capture_output=True, text=True
    )
    assert done.returncode == 2
    assert done.stderr.startswith("attempt tasks: error: Unknown task 'nope'.")
