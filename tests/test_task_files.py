"""Your own tasks from a task file (`attempt.tasks.user`): the format, its errors, bad data files, and a run
trained with `--task-file` that evaluates and predicts without the task file."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from attempt.cli import main
from attempt.config import TrainConfig
from attempt.data.sources import load_split
from attempt.tasks import base, get_task, list_tasks, user
from attempt.tasks.user import TaskFileError, read_task_file, register_definition
from attempt.testing import build_backbone, build_tokenizer
from attempt.utils.textfiles import DataError, numbered_rows

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "own_task"
GOOD_ROWS = "text,label\ngood thing,positive\nbad thing,negative\n"


pytestmark = pytest.mark.usefixtures("forget_registered_tasks")  # tests here register tasks on purpose


def _forget(name: str) -> None:
    """Unregister the user task `name`, as a new process would not know it."""
    del base._REGISTRY[name], user._DEFINED[name]


def _task_file(folder: Path, name: str, extra: str = "", files: dict[str, str] | None = None) -> Path:
    """A task file `name` in `folder` over train/validation CSVs (written from `files`, else good rows)."""
    for split in ("train", "validation"):
        (folder / f"{split}.csv").write_bytes(
            (files or {}).get(split, GOOD_ROWS).encode("utf-8", "surrogateescape")
        )
    path = folder / f"{name}.yaml"
    path.write_text(
        f"name: {name}\ndata:\n  files: {{train: train.csv, validation: validation.csv}}\nfields: [text]\n"
        f"label_words: [negative, positive]\n{extra}"
    )
    return path


# ------------------------------------------------------------------------------------------- the format
def test_a_task_files_data_ignore_the_mirror(tmp_path, monkeypatch):
    """With a mirror set (CI sets ATTEMPT_DATA_DIR), a task file's own files are still what is checked and read."""
    from attempt.training.preflight import check_data_dir

    monkeypatch.setenv("ATTEMPT_DATA_DIR", str(tmp_path))  # an empty mirror: no task's data are in it
    register_definition(read_task_file(EXAMPLE / "task.yaml"), str(EXAMPLE / "task.yaml"))
    task = get_task("product_reviews")
    check_data_dir(tmp_path, [task])  # does not ask the mirror for product_reviews' train split
    assert len(load_split(task, "train", data_dir=tmp_path)) == 40
    with pytest.raises(FileNotFoundError, match="has no training split"):
        check_data_dir(tmp_path, [get_task("rte")])  # a built-in task still needs its mirror file


def test_the_example_task_file_reads_into_a_task_over_its_csv_files():
    definition = read_task_file(EXAMPLE / "task.yaml")
    assert definition["name"] == "product_reviews" and definition["fields"] == ["text"]
    assert definition["data"]["files"]["train"] == str((EXAMPLE / "train.csv").resolve())
    register_definition(definition, str(EXAMPLE / "task.yaml"))
    task = get_task("product_reviews")
    rows = {split: load_split(task, split) for split in ("train", "validation", "test")}
    assert {split: len(r) for split, r in rows.items()} == {"train": 40, "validation": 16, "test": 16}
    source, target = task.format(rows["train"][0])
    assert source.startswith("review: ") and target in ("negative", "positive")
    assert task.text_fields(rows["train"][0]) == (source, None)


def test_json_task_files_raw_labels_and_default_metrics(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"q": "a", "y": "p"}\n{"q": "b", "y": "n"}\n')
    (tmp_path / "dev.tsv").write_text("q\ty\nc\tp\n")
    path = tmp_path / "t.json"
    definition = {"name": "json_task", "data": {"files": {"train": "train.jsonl", "validation": "dev.tsv"}},
                  "fields": ["q"], "label_field": "y", "raw_labels": {"n": "no", "p": "yes"}}  # fmt: skip
    path.write_text(json.dumps(definition))
    read = read_task_file(path)
    assert read["raw_labels"] == [["n", "no"], ["p", "yes"]] and read["metrics"] == ["accuracy"]
    register_definition(read, str(path))
    task = get_task("json_task")
    assert [task.format(r) for r in load_split(task, "train")] == [
        ("json_task q: a", "yes"),
        ("json_task q: b", "no"),
    ]
    assert task.test_split is None and task.is_small  # no test file: the validation file is halved


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("colour: blue\n", r"unknown key\(s\) colour\. Valid keys: name, kind"),
        ("metrics: [accuracy, bleu]\n", r"unknown metric\(s\) 'bleu'\. Known: accuracy"),
        (
            "template: 'review: {txt}'\n",
            r"template 'review: \{txt\}' names 'txt', not in fields \['text'\]\. Write",
        ),
        ("template: 'review: {}'\n", r"names '', not in fields"),
        ("template: 'review: {text:d}'\n", r"cannot be filled in .*Write \{column\}"),
        ("template: 'review: {text'\n", r"is not a format text"),
        ("raw_labels: {n: neg, p: pos}\n", r"label_words .* or raw_labels .*one of them"),
        ("kind: regression\n", r"a regression task has no label_words"),
        ("k_shot: 0\n", r"k_shot is the number of training examples per class"),
        ("label_field: text\n", r"label_field 'text' is also in fields"),
    ],
)
def test_invalid_task_files_name_the_file_and_the_fix(tmp_path, extra, message):
    path = _task_file(tmp_path, "bad_task", extra)
    with pytest.raises(TaskFileError, match=re.escape(str(path)) + ".*" + message):
        read_task_file(path)


def test_task_files_split_files_and_the_reader_accept_the_same_file_types(tmp_path):
    """One list (`attempt.utils.textfiles.ROW_FILE_SUFFIXES`): a type one of them reads, the others take."""
    (tmp_path / "train.json").write_text('{"text": "good thing", "label": "positive"}\n')
    (tmp_path / "validation.txt").write_text("text\tlabel\nbad thing\tnegative\n")
    path = tmp_path / "typed_task.yaml"
    path.write_text("name: typed_task\ndata:\n  files: {train: train.json, validation: validation.txt}\n"
                    "fields: [text]\nlabel_words: [negative, positive]\n")  # fmt: skip
    definition = read_task_file(path)
    register_definition(definition)
    assert load_split("typed_task", "train") == [{"text": "good thing", "label": 1}]
    assert load_split("typed_task", "validation") == [{"text": "bad thing", "label": 0}]
    assert TrainConfig(tasks=("rte",), data_files={"rte": {"train": "a.json", "test": "b.txt"}}).data_files
    path.write_text(path.read_text().replace("train.json", "train.xlsx"))
    with pytest.raises(TaskFileError, match=r"must end in \.csv, \.tsv, \.txt, \.jsonl, \.json \(CSV, TSV"):
        read_task_file(path)
    with pytest.raises(ValueError, match=r"must end in \.csv, \.tsv, \.txt, \.jsonl, \.json \(CSV, TSV"):
        TrainConfig(tasks=("rte",), data_files={"rte": {"train": "a.xlsx"}})
    with pytest.raises(DataError, match=r"a row file must end in"):
        numbered_rows(tmp_path / "train.xlsx")


def test_missing_keys_built_in_names_and_missing_data_files_are_refused(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("name: no_fields\ndata: {files: {train: train.csv, validation: validation.csv}}\n")
    with pytest.raises(TaskFileError, match=r"missing key\(s\) fields\. Add the input columns"):
        read_task_file(path)
    with pytest.raises(
        TaskFileError, match=r"name 'rte' is taken by the built-in task 'rte'; pick another name"
    ):
        read_task_file(_task_file(tmp_path, "rte"))
    path = _task_file(tmp_path, "gone_task")
    (tmp_path / "validation.csv").unlink()
    with pytest.raises(
        TaskFileError, match=r"data\.files\.validation: no such file .*relative to the task file"
    ):
        read_task_file(path)


def test_a_different_task_of_a_registered_name_is_refused(tmp_path):
    register_definition(read_task_file(_task_file(tmp_path, "twice_task")))
    with pytest.raises(TaskFileError, match=r"a different task named 'twice_task' is already registered"):
        register_definition(read_task_file(_task_file(tmp_path, "twice_task", "metrics: [f1]\n")))


# ------------------------------------------------------------------------------------------ bad data
def _load_train(tmp_path: Path, name: str, train: str) -> None:
    path = _task_file(tmp_path, name, files={"train": train})
    register_definition(read_task_file(path), str(path))
    load_split(name, "train")


FIX = r"Fix the file, or the task definition in .*\.yaml: `fields:` and `label_field:` name its columns"


def test_a_missing_column_names_the_file_line_and_the_fix(tmp_path):
    with pytest.raises(
        DataError, match=r"train\.csv, line 2: field\(s\) 'text' missing .*row has: review, label\)\. " + FIX
    ):
        _load_train(tmp_path, "missing_column", "review,label\ngood thing,positive\n")


def test_a_label_outside_the_label_words_names_the_file_line_and_the_fix(tmp_path):
    with pytest.raises(DataError, match=r"train\.csv, line 3, field 'label': .*'great' is outside the label set "
                       r"0\.\.1 \(negative, positive\).* " + FIX):  # fmt: skip
        _load_train(tmp_path, "odd_label", "text,label\ngood,positive\nfine,great\n")


def test_an_empty_split_names_the_file_and_the_fix(tmp_path):
    with pytest.raises(DataError, match=r"train\.csv has no rows \(empty split\)\. " + FIX):
        _load_train(tmp_path, "empty_split", "text,label\n")


def test_a_file_that_is_not_utf8_names_the_line_and_the_fix(tmp_path):
    with pytest.raises(DataError, match=r"train\.csv, line 3: not UTF-8 text .*Save the file as UTF-8"):
        _load_train(tmp_path, "latin1_file", "text,label\ngood,positive\nna\udcefve,negative\n")


def test_a_row_that_does_not_fit_the_header_names_the_line(tmp_path):
    with pytest.raises(DataError, match=r"train\.csv, line 2: .*Quote values that contain"):
        _load_train(tmp_path, "ragged_row", "text,label\ngood, cheap,positive\n")


def test_bad_data_stops_attempt_train_before_any_step(tmp_path, capsys):
    backbone = tmp_path / "tiny-t5"
    build_backbone("seq2seq").save_pretrained(backbone)
    build_tokenizer("seq2seq").save_pretrained(backbone)
    path = _task_file(tmp_path, "bad_train", files={"train": "text,label\ngood,positive\nfine,great\n"})
    argv = ["train", "--task-file", str(path), "--mode", "prompt_tuning", "--backbone", str(backbone),
            "--output-dir", str(tmp_path / "run"), "--max-steps", "2", "--quiet"]  # fmt: skip
    assert main(argv) == 2
    assert re.search(r"train\.csv, line 3, field 'label': .*'great'", capsys.readouterr().err)
    assert not (tmp_path / "run" / "best").exists()


def test_a_bad_task_file_is_a_one_line_usage_error(tmp_path, capsys):
    path = _task_file(tmp_path, "bad_cli", "template: '{body}'\n")
    assert main(["train", "--task-file", str(path), "--print-config"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "names 'body', not in fields ['text']" in err


def test_task_files_set_the_tasks_and_k_shot_and_the_config_records_them(tmp_path, capsys):
    path = _task_file(tmp_path, "shot_task", "k_shot: 1\n")
    assert main(["train", "--task-file", str(path), "--print-config"]) == 0
    import yaml

    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["tasks"] == ["shot_task"] and printed["k_shot"] == 1
    assert printed["task_definitions"]["shot_task"]["fields"] == ["text"]
    assert TrainConfig.from_dict(printed).task_definitions == printed["task_definitions"]


# -------------------------------------------------------------------------------------------- a run
@pytest.mark.slow
def test_a_run_trained_from_a_task_file_evaluates_and_predicts_without_it(tmp_path, monkeypatch, capsys):
    project = tmp_path / "project"
    shutil.copytree(EXAMPLE, project / "task")
    backbone = tmp_path / "tiny-t5"
    build_backbone("seq2seq").save_pretrained(backbone)
    build_tokenizer("seq2seq").save_pretrained(backbone)
    argv = ["train", "--task-file", str(project / "task" / "task.yaml"), "--mode", "prompt_tuning",
            "--backbone", str(backbone), "--output-dir", str(project / "runs" / "reviews"), "--max-steps", "2",
            "--batch-size", "4", "--eval-every", "2", "--attempt.prompt-length", "4", "--quiet"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    saved = json.loads((project / "runs" / "reviews" / "best" / "train_config.json").read_text())
    assert saved["task_definitions"]["product_reviews"]["data"]["files"]["test"] == "../../../task/test.csv"

    (project / "task" / "task.yaml").unlink()  # the run alone defines the task now
    moved = tmp_path / "elsewhere" / "project"
    moved.parent.mkdir()
    shutil.move(project, moved)  # the run and its data, together
    monkeypatch.chdir(tmp_path / "elsewhere")
    run = moved / "runs" / "reviews"
    assert main(["evaluate", str(run), "--out", str(tmp_path / "ev")]) == 0, capsys.readouterr().err
    results = json.loads((run / "results.json").read_text())
    assert json.loads((tmp_path / "ev" / "eval_test.json").read_text()) == results["test"]

    inputs = tmp_path / "reviews.txt"
    inputs.write_text("great kettle, works perfectly\n\nterrible toaster, broke in a day\n")
    code = main(["predict", str(run), "--inputs", str(inputs), "--output", str(tmp_path / "pred.jsonl")])
    assert code == 0, capsys.readouterr().err
    predictions = [json.loads(line) for line in (tmp_path / "pred.jsonl").read_text().splitlines()]
    assert len(predictions) == 2
    assert all(p["task"] == "product_reviews" for p in predictions), predictions


def test_a_train_config_with_task_definitions_registers_nothing(tmp_path):
    before = list_tasks()
    config = TrainConfig(
        tasks=("product_reviews",),
        task_definitions={"product_reviews": read_task_file(EXAMPLE / "task.yaml")},
    )
    assert list_tasks() == before and "product_reviews" not in before
    assert config.task_definitions["product_reviews"]["fields"] == ["text"]  # checked and canonical
    config.register_tasks()
    config.register_tasks()  # the same definitions again: a no-op
    assert list_tasks() == sorted([*before, "product_reviews"])
    assert get_task("product_reviews").label_words == ("negative", "positive")


@pytest.mark.slow
def test_the_best_model_of_a_task_file_run_loads_and_predicts_in_a_new_process(tmp_path):
    from attempt.evaluation.evaluate import predict
    from attempt.modeling import AttemptModel
    from attempt.training.loop import train

    project = tmp_path / "project"
    shutil.copytree(EXAMPLE, project / "task")
    backbone, tokenizer = build_backbone("seq2seq"), build_tokenizer("seq2seq")
    config = TrainConfig(
        mode="prompt_tuning", backbone="tiny-t5", tasks=("product_reviews",), output_dir=str(project / "run"),
        task_definitions={"product_reviews": read_task_file(project / "task" / "task.yaml")}, max_steps=2,
        batch_size=4, eval_every=2, attempt={"prompt_length": 4},
    )  # fmt: skip
    train(config, backbone=backbone, tokenizer=tokenizer, progress=False)
    moved = tmp_path / "elsewhere"
    shutil.move(project, moved)  # the run and its data, together
    _forget("product_reviews")  # a new process knows the built-in tasks only
    with pytest.raises(KeyError, match="Unknown task 'product_reviews'"):
        get_task("product_reviews")

    model = AttemptModel.from_pretrained(backbone, moved / "run" / "best")
    [prediction] = predict(model, tokenizer, [{"task": "product_reviews", "text": "great kettle"}])
    assert prediction["task"] == "product_reviews" and prediction["prediction"] in ("negative", "positive")
    files = dict(get_task("product_reviews").data_files)  # its data where the run moved it
    assert files == {split: str(moved / "task" / f"{split}.csv") for split in ("train", "validation", "test")}


def test_regression_and_extractive_qa_task_files(tmp_path):
    (tmp_path / "train.csv").write_text("a,b,score\nx,y,4.2\n")
    (tmp_path / "dev.csv").write_text("a,b,score\nx,z,9\n")
    path = tmp_path / "sim.yaml"
    path.write_text("name: my_similarity\nkind: regression\ndata: {files: {train: train.csv, validation: dev.csv}}\n"
                    "fields: [a, b]\nlabel_field: score\nlabel_range: [0, 5]\n")  # fmt: skip
    register_definition(read_task_file(path), str(path))
    task = get_task("my_similarity")
    assert task.metrics == ("pearson", "spearman")
    assert task.format(load_split(task, "train")[0]) == ("my_similarity a: x b: y", "4.2")
    with pytest.raises(
        DataError, match=r"dev\.csv, line 2, field 'score': .*outside the score range 0\.\.5\. Fix the file"
    ):
        load_split(task, "validation")
    (tmp_path / "qa.jsonl").write_text('{"question": "who?", "context": "Ann ran.", "answers": ["Ann"]}\n')
    path = tmp_path / "qa.yaml"
    path.write_text("name: my_qa\nkind: extractive_qa\ndata: {files: {train: qa.jsonl, validation: qa.jsonl}}\n"
                    "fields: [question, context]\nlabel_field: answers\ntemplate: 'question: {question} context: {context}'\n")  # fmt: skip
    register_definition(read_task_file(path), str(path))
    task = get_task("my_qa")
    assert task.format(load_split(task, "train")[0]) == ("question: who? context: Ann ran.", "Ann")
    assert task.metrics == ("squad_f1", "squad_exact_match")


def test_a_hub_task_file_reads_the_local_mirror(tmp_path):
    mirror = tmp_path / "mirror" / "someone" / "reviews" / "default"
    mirror.mkdir(parents=True)
    for split in ("train", "test"):
        (mirror / f"{split}.jsonl").write_text('{"body": "nice", "stars": 1}\n{"body": "meh", "stars": 0}\n')
    path = tmp_path / "hub.yaml"
    path.write_text("name: hub_reviews\ndata: {hub_id: someone/reviews, validation_split: test}\nfields: [body]\n"
                    "label_field: stars\nlabel_words: [bad, good]\n")  # fmt: skip
    register_definition(read_task_file(path), str(path))
    config = TrainConfig(tasks=("hub_reviews",), data_dir=str(tmp_path / "mirror"))
    from attempt.data.splits import load_task_data

    splits = load_task_data(config)["hub_reviews"]
    assert len(splits["train"]) == 2 and len(splits["validation"]) + len(splits["test"]) == 2  # halved


@pytest.mark.slow
def test_a_task_file_run_resumes_from_its_own_config(tmp_path, capsys):
    task = tmp_path / "task"
    shutil.copytree(EXAMPLE, task)
    backbone = tmp_path / "tiny-t5"
    build_backbone("seq2seq").save_pretrained(backbone)
    build_tokenizer("seq2seq").save_pretrained(backbone)
    run = tmp_path / "run"
    argv = ["train", "--task-file", str(task / "task.yaml"), "--mode", "prompt_tuning", "--backbone", str(backbone),
            "--output-dir", str(run), "--max-steps", "2", "--batch-size", "4", "--eval-every", "1",
            "--train-limit", "8", "--eval-limit", "4", "--attempt.prompt-length", "4", "--quiet"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    # the same run again: from its task file, or from its own saved config; the checkpoint is the same run's
    assert main(argv) == 0, capsys.readouterr().err
    assert main(["train", "--config", str(run / "train_config.json"), "--quiet"]) == 0, (
        capsys.readouterr().err
    )
    changed = (task / "task.yaml").read_text().replace("[accuracy, f1]", "[accuracy]")
    (task / "other.yaml").write_text(changed.replace("product_reviews", "product_reviews_2"))
    argv[2] = str(task / "other.yaml")
    assert main(argv) == 2
    assert "holds a checkpoint of a different run" in capsys.readouterr().err


def test_plain_text_inputs_fit_one_field_tasks_only(tmp_path, capsys):
    inputs = tmp_path / "inputs.txt"
    inputs.write_text("a fine film\n")
    out = str(tmp_path / "o.jsonl")
    assert (
        main(["predict", str(tmp_path / "no-run"), "--inputs", str(inputs), "--task", "rte", "--output", out])
        == 2
    )
    assert (
        "task 'rte' reads 2 fields (sentence1, sentence2), so one text a line cannot fill them; write JSON lines"
        in (capsys.readouterr().err)
    )
    assert main(["predict", str(tmp_path / "no-run"), "--inputs", str(inputs), "--output", out]) == 2
    assert "name the one of these inputs with --task" in capsys.readouterr().err
    # a one-field task: the inputs are fine, and the missing run is what is reported
    assert (
        main(
            ["predict", str(tmp_path / "no-run"), "--inputs", str(inputs), "--task", "sst2", "--output", out]
        )
        == 2
    )
    assert "No such run directory" in capsys.readouterr().err


def test_attempt_tasks_lists_and_shows_a_task_files_task(capsys):
    path = str(EXAMPLE / "task.yaml")
    assert main(["tasks", "--task-file", path]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("product_reviews"))
    assert row.split()[1:4] == ["your", "files", "classification"]
    assert main(["tasks", "--task-file", path, "--task", "product_reviews"]) == 0
    shown = capsys.readouterr().out
    assert (
        f"test={(EXAMPLE / 'test.csv').resolve()}" in shown
        and "labels               0=negative, 1=positive" in shown
    )
    assert "example:\nsource: review: " in shown  # from its own files, with no mirror needed
    assert main(["tasks", "--task-file", str(EXAMPLE / "nope.yaml")]) == 2
    assert "No such task file" in capsys.readouterr().err


def test_a_recipe_defines_a_task_inline_with_paths_from_where_it_runs(tmp_path, monkeypatch, capsys):
    shutil.copytree(EXAMPLE, tmp_path / "own")
    (tmp_path / "recipe.yaml").write_text(
        "mode: prompt_tuning\ntasks: [reviews]\ntask_definitions:\n  reviews:\n    name: reviews\n"
        "    data: {files: {train: own/train.csv, validation: own/validation.csv}}\n    fields: [text]\n"
        "    label_words: [negative, positive]\n"
    )
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--config", "recipe.yaml", "--print-config"]) == 0, capsys.readouterr().err
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["task_definitions"]["reviews"]["data"]["files"] == {
        "train": "own/train.csv",
        "validation": "own/validation.csv",
    }
    assert len(load_split(get_task("reviews"), "train")) == 40  # read from where the command runs
