"""A built-in task's splits from your own files (`TrainConfig.data_files`, `--train-file` ... `--columns`):
the config form and its errors, the rows that reach training, the paths a run records, a run trained that way."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from attempt.cli import main
from attempt.config import TrainConfig
from attempt.data.splits import load_task_data, paper_splits
from attempt.runs.portable import resolve_paths, saved_config
from attempt.testing import build_backbone, build_tokenizer
from attempt.utils.textfiles import DataError

RTE_ROWS = ("premise,hypothesis,label\n"
            "A man plays a guitar.,A man makes music.,entailment\n"
            "A dog sleeps.,The dog runs fast.,not_entailment\n"
            "Two kids read.,Children are reading.,0\n"
            "The sun is up.,It is night.,1\n")  # fmt: skip


def _rte_file(folder, name="mine.csv", text=RTE_ROWS):
    path = folder / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------------ the form
@pytest.mark.parametrize("value, message", [
    ("mine.csv", "maps task names to their files"),
    ({"cb": {"train": "mine.csv"}}, "not one of the run's tasks"),
    ({"rte": {"columns": {"a": "b"}}}, "maps splits"),
    ({"rte": {"train": "mine.csv", "dev": "x.csv"}}, "unknown key.*dev"),
    ({"rte": {"train": "mine.xlsx"}}, "must end in"),
    ({"rte": {"train": "mine.csv", "columns": ["premise"]}}, "columns maps your column names"),
])  # fmt: skip
def test_invalid_data_files_are_refused_with_the_form_to_use(value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(tasks=("rte",), data_files=value)


def test_the_options_fill_data_files_and_a_run_of_several_tasks_needs_the_task(tmp_path, capsys):
    argv = ["train", "--tasks", "rte", "--train-file", "mine.csv", "--test-file", "rte=held.jsonl",
            "--columns", "premise=sentence1", "--columns", "hypothesis=sentence2", "--print-config"]  # fmt: skip
    assert main(argv) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["data_files"] == {"rte": {"train": "mine.csv", "test": "held.jsonl",
                                             "columns": {"premise": "sentence1", "hypothesis": "sentence2"}}}  # fmt: skip
    assert main(["train", "--tasks", "rte", "cb", "--train-file", "mine.csv", "--print-config"]) == 2
    assert "write --train-file TASK=mine.csv" in capsys.readouterr().err
    assert (
        main(
            ["train", "--tasks", "rte", "--train-file", "mine.csv", "--columns", "premise", "--print-config"]
        )
        == 2
    )
    assert "write COLUMN=FIELD" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ the rows
def test_a_train_file_replaces_only_the_train_split(tmp_path, data_dir):
    path = _rte_file(tmp_path)
    columns = {"premise": "sentence1", "hypothesis": "sentence2"}
    config = TrainConfig(
        tasks=("rte",), data_dir=str(data_dir), data_files={"rte": {"train": str(path), "columns": columns}}
    )
    data = load_task_data(config)["rte"]
    assert [row["sentence1"] for row in data["train"]] == ["A man plays a guitar.", "A dog sleeps.", "Two kids read.",
                                                           "The sun is up."]  # fmt: skip
    assert [row["label"] for row in data["train"]] == [
        0,
        1,
        0,
        1,
    ]  # label words and ids, both read as the ids
    official = paper_splits(
        "rte", data_dir, seed=config.seed
    )  # validation and test: the protocol's, unchanged
    assert data["validation"] == official["validation"] and data["test"] == official["test"]


def test_all_three_files_need_no_mirror_and_bad_rows_name_the_file_and_line(tmp_path, monkeypatch):
    from attempt.training.preflight import check_before_training

    monkeypatch.setenv("ATTEMPT_DATA_DIR", str(tmp_path / "empty-mirror"))
    (tmp_path / "empty-mirror").mkdir()
    path = _rte_file(tmp_path)
    spec = {split: str(path) for split in ("train", "validation", "test")}
    spec["columns"] = {"premise": "sentence1", "hypothesis": "sentence2"}
    config = TrainConfig(
        mode="prompt_tuning", tasks=("rte",), output_dir=str(tmp_path / "run"), data_files={"rte": spec}
    )
    check_before_training(config)  # no mirror file is asked for
    assert {split: len(rows) for split, rows in load_task_data(config)["rte"].items()} == {
        "train": 4,
        "validation": 4,
        "test": 4,
    }

    _rte_file(tmp_path, "bad.csv", RTE_ROWS + "A cat.,A pet.,maybe\n")
    bad = TrainConfig(tasks=("rte",), data_files={"rte": {**spec, "train": str(tmp_path / "bad.csv")}})
    with pytest.raises(DataError, match=r"bad\.csv, line 6.*label"):
        load_task_data(bad)
    missing = TrainConfig(mode="prompt_tuning", tasks=("rte",), output_dir=str(tmp_path / "run"),
                          data_files={"rte": {**spec, "test": str(tmp_path / "nope.csv")}})  # fmt: skip
    with pytest.raises(FileNotFoundError, match=r"data_files\['rte'\]\.test: no such file .*nope\.csv"):
        check_before_training(missing)


def test_a_run_records_its_files_relative_to_itself(tmp_path):
    (tmp_path / "data").mkdir()
    path = _rte_file(tmp_path / "data")
    config = TrainConfig(
        tasks=("rte",), output_dir=str(tmp_path / "runs" / "a"), data_files={"rte": {"train": str(path)}}
    )
    saved = saved_config(config)
    assert saved["data_files"] == {"rte": {"train": "../../data/mine.csv", "columns": {}}}
    back = resolve_paths(saved, tmp_path / "runs" / "a")
    assert back["data_files"]["rte"]["train"] == str(path)


# -------------------------------------------------------------------------------------------- a run
@pytest.mark.slow
def test_a_run_trained_on_your_rte_file_moves_and_evaluates(tmp_path, monkeypatch, capsys):
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    for split in ("train", "validation", "test"):
        _rte_file(project / "data", f"{split}.csv")
    backbone = tmp_path / "tiny-t5"
    build_backbone("seq2seq").save_pretrained(backbone)
    build_tokenizer("seq2seq").save_pretrained(backbone)
    monkeypatch.chdir(project)  # relative paths, as a user types them
    argv = ["train", "--tasks", "rte", "--mode", "prompt_tuning", "--backbone", str(backbone),
            "--train-file", "data/train.csv", "--validation-file", "data/validation.csv", "--test-file", "data/test.csv",
            "--columns", "premise=sentence1", "--columns", "hypothesis=sentence2", "--output-dir", "runs/rte",
            "--max-steps", "2", "--batch-size", "2", "--eval-every", "2", "--attempt.prompt-length", "4", "--quiet"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    saved = json.loads((project / "runs" / "rte" / "train_config.json").read_text())
    assert saved["data_files"]["rte"]["test"] == "../../data/test.csv"

    moved = tmp_path / "elsewhere"
    shutil.move(project, moved)  # the run and its data, together
    monkeypatch.chdir(tmp_path)
    run = moved / "runs" / "rte"
    assert main(["evaluate", str(run), "--out", str(tmp_path / "ev")]) == 0, capsys.readouterr().err
    results = json.loads((run / "results.json").read_text())
    assert json.loads((tmp_path / "ev" / "eval_test.json").read_text()) == results["test"]

    alone = tmp_path / "run-alone"  # the run without its data: score your file instead of the recorded split
    shutil.copytree(run, alone)
    argv = ["evaluate", str(alone), "--file", str(moved / "data" / "test.csv"), "--columns", "premise=sentence1",
            "--columns", "hypothesis=sentence2", "--out", str(tmp_path / "ev-file")]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "ev-file" / "eval_file.json").read_text()) == results["test"]
    assert main(["evaluate", str(alone), "--columns", "premise=sentence1"]) == 2
    assert "give the file too" in capsys.readouterr().err
    bad = _rte_file(tmp_path, "bad.csv", RTE_ROWS + "A cat.,A pet.,maybe\n")
    argv = ["evaluate", str(alone), "--file", str(bad), "--columns", "premise=sentence1", "--columns",
            "hypothesis=sentence2", "--backbone", str(tmp_path / "no-such-backbone")]  # fmt: skip
    assert main(argv) == 2
    assert "bad.csv, line 6" in capsys.readouterr().err  # the file is read before any backbone would load
