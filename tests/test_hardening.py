"""Hostile or careless input through the command line: each case is one line naming the problem and the fix,
exit code 2, and nothing lost or half-written (issue 25). Each test failed on the code before it (1316ae4)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from safetensors import SafetensorError

from attempt import cli
from attempt.config import MAX_PROMPT_NAME, TrainConfig
from attempt.prompts.library import PromptLibrary, SourcePrompt, read_original_prompt, read_peft_prompt
from attempt.runs import checkpoint
from attempt.tasks.user import TaskFileError, read_task_file
from attempt.testing import build_backbone, build_tokenizer
from attempt.utils import storage
from attempt.utils.reading import CorruptFile

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "own_task"
TOO_DEEP = "lists or mappings nested more than 100 deep"
# what safetensors and torch.save raise on a full disk (seen on a full tmpfs)
SAFETENSORS_FULL = "Error while serializing: I/O error: No space left on device (os error 28)"
TORCH_FULL = "[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534"


pytestmark = pytest.mark.usefixtures("forget_registered_tasks")  # tests here register tasks on purpose


def one_line_error(capsys, *argv) -> str:
    """Run the CLI, expect exit code 2 and exactly one error line on stderr (besides the backbone loader's
    progress bars), no traceback; return that line."""
    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("Loading weights")]
    assert len(lines) == 1 and lines[0].startswith("attempt ") and "Traceback" not in err, err
    return lines[0]


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# ------------------------------------------------------------------------------------------- deep nesting
@pytest.mark.parametrize("depth", [1000, 5000])
@pytest.mark.parametrize("suffix", [".yaml", ".json"])
@pytest.mark.parametrize("command", ["tasks", "train"])
def test_a_task_file_nested_thousands_deep_is_one_line(tmp_path, capsys, depth, suffix, command):
    path = tmp_path / f"task{suffix}"
    path.write_text(f'{{"name": {nested(depth)}}}' if suffix == ".json" else f"name: {nested(depth)}\n")
    extra = ["--print-config"] if command == "train" else []
    err = one_line_error(capsys, command, "--task-file", path, *extra)
    assert err == (
        f"attempt {command}: error: {path}: {TOO_DEEP}; a task file is a few keys deep (name, data: "
        "{files: ...}, fields, ...). Fix it."
    )


@pytest.mark.parametrize("depth", [1000, 5000])
def test_a_recipe_nested_thousands_deep_is_one_line(tmp_path, capsys, depth):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"mode: attempt\ntasks: {nested(depth)}\n")
    err = one_line_error(capsys, "train", "--config", recipe, "--print-config")
    assert err == f"attempt train: error: {recipe} is not valid YAML: {TOO_DEEP}"
    with pytest.raises(ValueError) as caught:
        TrainConfig.from_yaml(recipe)
    assert str(caught.value) == f"{recipe} is not a valid recipe ({TOO_DEEP}); fix the YAML."
    err = one_line_error(capsys, "train", "--set", f"tasks={nested(depth)}", "--print-config")
    assert err.endswith(f"is not a valid YAML value ({TOO_DEEP})") and len(err) < 300


def test_a_yaml_alias_bomb_is_refused_without_expanding_it(tmp_path, capsys):
    value = "&a0 [x, x, x, x, x, x, x, x, x, x]"
    for i in range(1, 9):  # each list holds the previous one ten times: 10^9 values in 300 bytes
        value = f"&a{i} [{value}, {', '.join([f'*a{i - 1}'] * 9)}]"
    recipe = tmp_path / "bomb.yaml"
    recipe.write_text(f"mode: attempt\nsource_prompts: {value}\n")
    err = one_line_error(capsys, "train", "--config", recipe, "--print-config")  # before: no answer in 60 s
    assert err == (
        f"attempt train: error: {recipe} is not valid YAML: more than 100,000 values once its aliases "
        "(&name / *name) are expanded"
    )


def test_a_saved_config_nested_thousands_deep_is_a_damaged_file(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "best").mkdir(parents=True)
    (run / "train_config.json").write_text(f'{{"tasks": {nested(5000)}}}')
    err = one_line_error(capsys, "evaluate", run)
    assert err == (
        f"attempt evaluate: error: {run / 'train_config.json'} is damaged or not what it should be ({TOO_DEEP}). "
        "Restore it: best/train_config.json is a copy of it."
    )


# ------------------------------------------------------------------------------------------ prompt files
def test_importing_a_text_file_as_a_peft_adapter_is_one_line(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes, not a prompt\n")
    err = one_line_error(capsys, "prompts", "--library", tmp_path / "lib", "import", notes, "--format", "peft",
                         "--name", "notes")  # fmt: skip
    assert err.startswith(f"attempt prompts: error: {notes} is not a safetensors file (")
    assert err.endswith(
        "A PEFT adapter is a folder with adapter_config.json and adapter_model.safetensors (or give "
        "--format original for a torch.save'd .pt prompt)."
    )
    assert not (tmp_path / "lib").exists()
    (tmp_path / "adapter_config.json").write_text("{")
    with pytest.raises(CorruptFile, match=r"adapter_config.json is damaged or not what it should be"):
        read_peft_prompt(notes)


def test_a_pickled_prompt_is_refused_in_one_line_naming_the_file_and_the_fix(tmp_path, capsys):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save(Evil(), path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        err = one_line_error(
            capsys, "prompts", "--library", tmp_path / "lib", "import", path, "--name", "evil"
        )
    assert err == (
        f"attempt prompts: error: {path} is not a plain torch.save'd tensor (it holds pickled code "
        "(print), which would run on loading; refused). If you trust the file, load it where its code "
        "may run and torch.save the [m, d] tensor alone, then import that."
    )
    assert [str(w.message) for w in caught] == []
    assert not (tmp_path / "lib").exists()
    with pytest.raises(ValueError, match=r"^[^\n]*$"):  # the library's error too is one line
        read_original_prompt(path)


# ------------------------------------------------------------------------------------------- task files
def test_empty_label_words_are_named_as_the_problem(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\na,x\n")
    path = tmp_path / "task.yaml"
    path.write_text("name: mine\ndata: {files: {train: train.csv, validation: train.csv}}\nfields: [text]\n"
                    "label_words: []\n")  # fmt: skip
    with pytest.raises(TaskFileError) as caught:
        read_task_file(path)
    assert str(caught.value) == f"{path}: a classification task needs at least 2 label words (text); got []."
    path.write_text("name: mine\ndata: {files: {train: train.csv, validation: train.csv}}\nfields: [text]\n")
    with pytest.raises(TaskFileError) as caught:
        read_task_file(path)
    assert str(caught.value) == (
        f"{path}: say what the labels are: label_words (e.g. [negative, positive]) or raw_labels for a "
        "classification task, or kind: regression / extractive_qa."
    )


# ------------------------------------------------------------------------------------------ prompt names
RULE = (
    f"use 1-{MAX_PROMPT_NAME} letters, digits, '_', '-' or '.', starting with a letter or digit and not ending "
    "in .json or .safetensors (e.g. 'mnli' or 'mnli.minilm')."
)


@pytest.mark.parametrize(
    ("name", "shown"),
    [("", "''"), ("a" * 300, f"{'a' * 40!r}... (300 characters)"), ("mnli\n", "'mnli\\n'")],
    ids=["empty", "300-characters", "newline"],
)
def test_prompt_names_are_checked_against_the_rule(tmp_path, capsys, name, shown):
    with pytest.raises(ValueError) as caught:
        TrainConfig(mode="source", prompt_name=name)
    assert str(caught.value) == f"Invalid prompt name {shown}: {RULE}"
    with pytest.raises(ValueError) as caught:
        PromptLibrary(tmp_path / "lib").check_writable(name)
    assert str(caught.value) == f"Invalid prompt name {shown}: {RULE}"
    with pytest.raises(ValueError, match="Invalid prompt name"):
        SourcePrompt(name, torch.ones(2, 4))
    err = one_line_error(capsys, "train-source", "--tasks", "rte", "--prompt-name", name, "--backbone",
                         tmp_path / "no-backbone", "--output-dir", tmp_path / "run", "--library", tmp_path / "lib")  # fmt: skip
    assert err == f"attempt train-source: error: Invalid prompt name {shown}: {RULE}"
    assert not (tmp_path / "run").exists() and not (tmp_path / "lib").exists()


def test_the_longest_prompt_name_is_stored_and_read_back(tmp_path):
    name = "p" * MAX_PROMPT_NAME
    library = PromptLibrary(tmp_path)
    library.add(SourcePrompt(name, torch.ones(2, 4)))
    assert library.names() == [name] and library.get(name).name == name


# ------------------------------------------------------------------------------------------ prompts list
def test_one_damaged_prompt_does_not_hide_the_others_in_prompts_list(tmp_path, capsys):
    library = PromptLibrary(tmp_path)
    for i, name in enumerate(("a_good", "b_damaged", "c_good")):
        library.add(SourcePrompt(name, torch.full((2, 4), float(i)), task="rte"))
    (tmp_path / "b_damaged.json").write_text("{")
    before = sorted((p.name, p.read_bytes()) for p in tmp_path.iterdir())
    code = cli.main(["prompts", "--library", str(tmp_path), "list"])
    out, err = capsys.readouterr()
    assert code == 2
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["a_good", "c_good"]
    assert err.splitlines() == [
        f"attempt prompts: error: {tmp_path / 'b_damaged.json'} is damaged or not what it should be (Expecting "
        "property name enclosed in double quotes: line 1 column 2 (char 1)). Remove it (`attempt prompts remove "
        f"b_damaged --library {tmp_path}`) and add it again (`attempt prompts add/import`, or retrain it with "
        "`attempt train-source --overwrite`)."
    ]
    assert sorted((p.name, p.read_bytes()) for p in tmp_path.iterdir()) == before  # nothing repaired or lost
    entries, damaged = library.scan()
    assert [e["name"] for e in entries] == ["a_good", "c_good"] and list(damaged) == ["b_damaged"]
    with pytest.raises(CorruptFile, match="b_damaged.json is damaged"):
        library.list()


# ----------------------------------------------------------------------------------------- a full disk
def _no_space(tensors, filename, metadata=None):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_during_a_checkpoint_write_is_one_line_and_resume_is_exact(tmp_path, capsys, monkeypatch):
    task = tmp_path / "task"
    shutil.copytree(EXAMPLE, task)
    backbone = tmp_path / "tiny-t5"
    build_backbone("seq2seq").save_pretrained(backbone)
    build_tokenizer("seq2seq").save_pretrained(backbone)

    def argv(run: Path) -> list[str]:
        return ["train", "--task-file", str(task / "task.yaml"), "--mode", "prompt_tuning", "--backbone",
                str(backbone), "--output-dir", str(run), "--max-steps", "2", "--batch-size", "4", "--eval-every",
                "1", "--train-limit", "8", "--eval-limit", "4", "--attempt.prompt-length", "4", "--quiet"]  # fmt: skip

    assert cli.main(argv(tmp_path / "full")) == 0, capsys.readouterr().err
    real_save, writes = storage.save_file, []

    def full_at_step_2(tensors, filename, metadata=None):
        if ".checkpoint." in str(filename):  # the checkpoint's temporary folder
            writes.append(filename)
            if len(writes) == 2:
                return _no_space(tensors, filename, metadata)
        return real_save(tensors, filename, metadata=metadata)

    monkeypatch.setattr(storage, "save_file", full_at_step_2)
    run = tmp_path / "cut"
    capsys.readouterr()
    err = one_line_error(capsys, *argv(run))
    assert err == (
        f"attempt train: error: Could not write the checkpoint {run / 'checkpoint'} (no space left on the "
        "device); the previous checkpoint is kept: run the same command again to resume from it once there is "
        "room (free disk space, or move output_dir to a larger disk) or the disk works again."
    )
    assert checkpoint.load(run / "checkpoint")["state"]["step"] == 1
    assert [p.name for p in run.iterdir() if p.name.startswith(".")] == []  # no half-written folder
    monkeypatch.setattr(storage, "save_file", real_save)
    assert cli.main(argv(run)) == 0, capsys.readouterr().err
    resumed, uncut = (checkpoint.load(r / "checkpoint") for r in (run, tmp_path / "full"))
    assert resumed["state"]["step"] == uncut["state"]["step"] == 2
    assert resumed["weights"].keys() == uncut["weights"].keys()
    for name, tensor in uncut["weights"].items():
        assert torch.equal(resumed["weights"][name], tensor), name


def _raises(error: Exception):
    def fake(*args, **kwargs):
        raise error

    return fake


def _full_from_torch(*args, **kwargs):
    """torch.save on a full disk: a RuntimeError of its zip writer, raised while handling the OSError."""
    try:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    except OSError:
        raise RuntimeError(TORCH_FULL)  # noqa: B904 - torch's writer chains it implicitly, as here


@pytest.mark.parametrize(
    ("target", "fake", "detail"),
    [
        ("attempt.utils.storage.save_file", _no_space, "no space left on the device"),
        ("attempt.utils.storage.save_file", _raises(SafetensorError(SAFETENSORS_FULL)), "no space left on the device"),
        ("torch.save", _full_from_torch, "no space left on the device"),
        ("torch.save", _raises(RuntimeError(TORCH_FULL)), f"{TORCH_FULL}; is the disk full?"),
    ],
    ids=["OSError", "SafetensorError", "torch.save-chained", "torch.save-bare"],
)  # fmt: skip
def test_each_way_a_full_disk_surfaces_keeps_the_previous_checkpoint(
    tmp_path, monkeypatch, target, fake, detail
):
    fields = dict(weights={"w": torch.ones(3)}, optimizer={"state": {}}, scheduler={"last_epoch": 1},
                  rng=[checkpoint.rng_state()], state={"step": 1}, config={"mode": "attempt"})  # fmt: skip
    checkpoint.save(tmp_path / "checkpoint", **fields)
    monkeypatch.setattr(target, fake)
    with pytest.raises(checkpoint.CheckpointWriteFailed) as caught:
        checkpoint.save(tmp_path / "checkpoint", **{**fields, "state": {"step": 2}})
    assert str(caught.value).startswith(
        f"Could not write the checkpoint {tmp_path / 'checkpoint'} ({detail}); "
    )
    monkeypatch.undo()
    assert checkpoint.load(tmp_path / "checkpoint")["state"] == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def test_a_failure_that_is_no_write_failure_is_not_disguised(tmp_path, monkeypatch):
    def bug(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr("attempt.utils.storage.save_file", bug)
    with pytest.raises(KeyError, match="a bug"):
        checkpoint.save(tmp_path / "checkpoint", weights={"w": torch.ones(1)}, optimizer={}, scheduler={}, rng=[],
                        state={}, config={})  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_deep_json_in_a_prompt_library_names_that_prompt(tmp_path, capsys):
    library = PromptLibrary(tmp_path)
    library.add(SourcePrompt("deep", torch.ones(2, 4)))
    library.add(SourcePrompt("fine", torch.ones(2, 4)))
    (tmp_path / "deep.json").write_text(f'{{"training": {nested(5000)}}}')
    code = cli.main(["prompts", "--library", str(tmp_path), "list", "--json"])
    out, err = capsys.readouterr()
    assert code == 2 and [e["name"] for e in json.loads(out)] == ["fine"]
    assert err.startswith(f"attempt prompts: error: {tmp_path / 'deep.json'} is damaged or not what it should be "
                          f"({TOO_DEEP}). Remove it")  # fmt: skip
