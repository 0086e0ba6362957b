"""A newcomer's first hour with data of their own (issue 24), through the `attempt` command where they meet it:
label maps on the command line (`--labels`), every data check before the backbone loads, a Hub split refused
up front without `datasets`, predicting raw texts in one call from Python (`attempt.predict_texts`), `attempt
predict` on inputs without "task" / with other column names / with per-label scores, and `attempt evaluate` on
a run moved away from its data. Tiny random T5 backbones; CSVs that spell columns and labels their own way."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml

import attempt
from attempt.cli import main
from attempt.tasks import base, user
from attempt.testing import build_backbone, build_tokenizer
from conftest import REPO

# a premise/hypothesis file that spells its columns and labels its own way (labels: entails / neutral)
PAIRS = ("premise,hypothesis,gold\n"
         "A man plays a guitar.,A man makes music.,entails\n"
         "A dog sleeps.,The dog runs fast.,neutral\n"
         "Two kids read.,Children are reading.,entails\n"
         "The sun is up.,It is night.,neutral\n"
         "A cat eats.,An animal eats.,entails\n")  # fmt: skip
PAIRS_IN_WORDS = PAIRS.replace("entails", "entailment").replace("neutral", "not_entailment")  # the task's own
PAIR_COLUMNS = [
    "--columns",
    "premise=sentence1",
    "--columns",
    "hypothesis=sentence2",
    "--columns",
    "gold=label",
]
# a review file with labels neg / pos, for a task file whose label words are negative / positive
REVIEWS = ('review,stars\n"great kettle, works well",pos\nbroke in a week,neg\nlovely mug,pos\n'
           "awful tent,neg\nsuperb lamp,pos\nuseless fan,neg\n")  # fmt: skip
TASK_FILE = ("name: my_reviews\ndata: {files: {train: reviews.csv, validation: reviews.csv}}\nfields: [review]\n"
             "label_field: stars\nlabel_words: [negative, positive]\n")  # fmt: skip
RAW_TASK_FILE = TASK_FILE.replace(
    "label_words: [negative, positive]", "raw_labels: {neg: negative, pos: positive}"
)
TINY = ["--mode", "prompt_tuning", "--max-steps", "1", "--batch-size", "2", "--eval-every", "1",
        "--attempt.prompt-length", "4", "--quiet"]  # fmt: skip


pytestmark = pytest.mark.usefixtures("forget_registered_tasks")  # tests here register tasks on purpose


@pytest.fixture(scope="module")
def tiny_t5(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-t5")
    build_backbone("seq2seq").save_pretrained(folder)
    build_tokenizer("seq2seq").save_pretrained(folder)
    return folder


@pytest.fixture
def project(tmp_path) -> Path:
    """A folder with the newcomer's files: pairs.csv (rte-like; pairs-in-words.csv spells the labels as rte
    does) and two task files over reviews.csv (reviews-raw.yaml maps its labels itself, with raw_labels)."""
    (tmp_path / "pairs.csv").write_text(PAIRS)
    (tmp_path / "pairs-in-words.csv").write_text(PAIRS_IN_WORDS)
    (tmp_path / "reviews.csv").write_text(REVIEWS)
    (tmp_path / "reviews.yaml").write_text(TASK_FILE)
    (tmp_path / "reviews-raw.yaml").write_text(RAW_TASK_FILE)
    return tmp_path


def _own_rte(project: Path, task: str = "") -> list[str]:
    """--train/validation/test-file options giving every rte split from pairs.csv (no mirror, no Hub)."""
    prefix = f"{task}=" if task else ""
    path = project / "pairs.csv"
    return [
        arg for split in ("train", "validation", "test") for arg in (f"--{split}-file", f"{prefix}{path}")
    ]


def _err(capsys) -> str:
    return capsys.readouterr().err


# ------------------------------------------------------------------------------------ 1. label maps
def test_labels_on_the_command_line_are_recorded_in_data_files_like_columns(capsys):
    argv = ["train", "--tasks", "rte", "--train-file", "pairs.csv", "--columns", "gold=label",
            "--labels", "entails=entailment", "neutral=not_entailment", "--print-config"]  # fmt: skip
    assert main(argv) == 0, _err(capsys)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["data_files"] == {"rte": {"train": "pairs.csv", "columns": {"gold": "label"},
                                             "labels": {"entails": "entailment", "neutral": "not_entailment"}}}  # fmt: skip
    argv = ["train", "--tasks", "rte", "cb", "--train-file", "rte=pairs.csv", "--labels", "rte:entails=0",
            "--labels", "cb:maybe=neutral", "--print-config"]  # fmt: skip
    assert main(argv) == 0, _err(capsys)
    printed = yaml.safe_load(capsys.readouterr().out)["data_files"]
    assert (printed["rte"]["labels"], printed["cb"]) == (
        {"entails": "0"},
        {"columns": {}, "labels": {"maybe": "neutral"}},
    )
    assert main(["train", "--tasks", "rte", "cb", "--labels", "entails=entailment", "--print-config"]) == 2
    assert "write --labels TASK:entails=entailment" in _err(capsys)
    assert main(["train", "--tasks", "rte", "--labels", "entails", "--print-config"]) == 2
    assert "--labels entails: write VALUE=LABEL" in _err(capsys)


def test_a_file_with_its_own_label_spelling_names_its_values_and_the_flag_then_trains_with_labels(
    project, tiny_t5, capsys
):
    argv = ["train", "--tasks", "rte", *_own_rte(project), *PAIR_COLUMNS, "--backbone", str(tiny_t5),
            "--output-dir", str(project / "run"), *TINY]  # fmt: skip
    assert main(argv) == 2
    err = _err(capsys)
    assert (
        f"{project / 'pairs.csv'}, line 2, field 'label': Task 'rte': label 'entails' is outside the label set 0..1 "
        "(entailment, not_entailment). The file's labels outside that set: 'entails' (3 rows), 'neutral' (2 rows). "
        "Map them onto the task's labels with --labels entails=LABEL neutral=LABEL" in err
    ), err
    assert "Test splits without labels" not in err and not (project / "run").exists()

    assert main([*argv, "--labels", "entails=entailment", "neutral=not_entailment"]) == 0, _err(capsys)
    saved = json.loads((project / "run" / "train_config.json").read_text())
    assert saved["data_files"]["rte"]["labels"] == {"entails": "entailment", "neutral": "not_entailment"}
    predictions = [
        json.loads(line) for line in (project / "run" / "test_predictions.jsonl").read_text().splitlines()
    ]
    assert [p["reference"] for p in predictions] == ["entailment", "not_entailment"] * 2 + ["entailment"]
    argv = ["evaluate", str(project / "run"), "--file", str(project / "pairs.csv"), *PAIR_COLUMNS, "--out",
            str(project / "ev")]  # fmt: skip
    assert main(argv) == 0, _err(capsys)  # the run's --labels apply to a file of yours it scores
    assert set(json.loads((project / "ev" / "eval_file.json").read_text())) == {"rte", "average"}
    out = project / "predicted.jsonl"  # and to the labels of inputs to predict, kept as references
    argv = [
        "predict",
        str(project / "run"),
        "--inputs",
        str(project / "pairs.csv"),
        *PAIR_COLUMNS,
        "--output",
        str(out),
    ]
    assert main(argv) == 0, _err(capsys)
    predicted = [json.loads(line) for line in out.read_text().splitlines()]
    assert [p["reference"] for p in predicted] == ["entailment", "not_entailment"] * 2 + ["entailment"]
    [one] = attempt.predict_texts(project / "run", [{"premise": "A man.", "hypothesis": "A person.", "gold": "neutral"}],
                                  columns={"premise": "sentence1", "hypothesis": "sentence2", "gold": "label"})  # fmt: skip
    assert one["reference"] == "not_entailment" and set(one["scores"]) == {"entailment", "not_entailment"}
    (project / "odd.csv").write_text("premise,hypothesis,gold\nA.,B.,maybe\n")
    odd = [*argv[:3], str(project / "odd.csv"), *argv[4:]]
    assert main(odd) == 2
    err = _err(capsys)
    assert "odd.csv, line 2, field 'label': Task 'rte': label 'maybe' is outside the label set" in err, err
    assert main([*odd, "--labels", "maybe=entailment"]) == 0, _err(capsys)
    assert json.loads(out.read_text())["reference"] == "entailment"


def test_labels_map_a_task_files_own_files_and_a_label_the_task_lacks_is_refused(project, tiny_t5, capsys):
    argv = ["train", "--task-file", str(project / "reviews.yaml"), "--backbone", str(tiny_t5),
            "--output-dir", str(project / "run"), *TINY]  # fmt: skip
    assert main(argv) == 2
    assert "The file's labels outside that set: 'pos' (3 rows), 'neg' (3 rows)" in _err(capsys)
    assert main([*argv, "--labels", "pos=positive", "neg=good"]) == 2
    assert (
        "--labels neg=good: 'good' is not a label of task 'my_reviews'; its labels: negative, positive"
        in _err(capsys)
    )
    assert main([*argv, "--labels", "pos=positive", "neg=negative"]) == 0, _err(capsys)
    saved = json.loads((project / "run" / "train_config.json").read_text())
    assert saved["data_files"] == {
        "my_reviews": {"columns": {}, "labels": {"pos": "positive", "neg": "negative"}}
    }


# -------------------------------------------------------------------- 2. checks before the backbone
def test_a_bad_label_is_refused_before_the_backbone_loads(project, capsys):
    argv = ["train", "--tasks", "rte", *_own_rte(project), *PAIR_COLUMNS, "--backbone",
            str(project / "no-such-backbone"), "--output-dir", str(project / "run"), *TINY]  # fmt: skip
    assert main(argv) == 2
    err = _err(capsys)
    assert "field 'label': Task 'rte': label 'entails' is outside the label set" in err, err
    assert "no-such-backbone" not in err and not (project / "run").exists()
    (project / "short.csv").write_text("premise,gold\nA man.,entails\n")  # a missing column, also first
    short = [
        arg
        for split in ("train", "validation", "test")
        for arg in (f"--{split}-file", str(project / "short.csv"))
    ]
    argv = ["train", "--tasks", "rte", *short, "--columns", "premise=sentence1",
            "--columns", "gold=label", "--labels", "entails=entailment", "--backbone", str(project / "no-such"),
            "--output-dir", str(project / "run"), *TINY]  # fmt: skip
    assert main(argv) == 2
    assert (
        "short.csv, line 2: field(s) 'sentence2' missing for task 'rte' (row has: sentence1, label)"
        in _err(capsys)
    )


def test_a_split_that_would_come_from_the_hub_without_datasets_is_refused_naming_the_options(
    project, monkeypatch, capsys
):
    monkeypatch.setitem(sys.modules, "datasets", None)  # not installed, as after scripts/setup.sh
    monkeypatch.delenv("ATTEMPT_DATA_DIR", raising=False)
    argv = ["train", "--tasks", "rte", "--train-file", str(project / "pairs-in-words.csv"), *PAIR_COLUMNS,
            "--backbone", str(project / "no-such-backbone"), "--output-dir", str(project / "run"), *TINY]  # fmt: skip
    assert main(argv) == 2
    err = _err(capsys)
    assert (
        "Task 'rte': its validation, test split(s) would come from the Hugging Face Hub, which needs the 'datasets' "
        "package (not installed). Give them as files of yours (--validation-file FILE --test-file FILE), point "
        "--data-dir (or $ATTEMPT_DATA_DIR) at a local mirror, or install it: pip install 'attempt-tuning[data]'."
    ) in err, err
    assert not (project / "run").exists()


def test_the_readme_says_what_the_setup_installs():
    """scripts/setup.sh installs the project with some extras; the README names them, and the feature extras
    they pull in, and says how to add `datasets` (the `data` extra, for the Hub), which they leave out."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    setup = (REPO / "scripts" / "setup.sh").read_text()
    extras = re.search(r'pip install .*-e "\.\[([\w,]+)\]"', setup).group(1)
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pulled = re.findall(
        r"attempt-tuning\[([\w,]+)\]", " ".join(d for e in extras.split(",") for d in declared[e])
    )
    installed = sorted({name for names in pulled for name in names.split(",")})
    readme = (REPO / "README.md").read_text()
    said = re.search(
        r"`scripts/setup\.sh` makes `\.venv` with .*? its extras ([\w,\s]+?) \(`\.\[([\w,]+)\]`", readme, re.S
    )
    assert said is not None, "the README's set-up sentence names the extras"
    assert sorted(re.split(r",\s*|\s+and\s+", said.group(1))) == installed and said.group(2) == extras
    assert (
        "data" not in installed and "data" not in extras.split(",") and "pip install -e '.[data]'" in readme
    )


# ---------------------------------------------------------------- 3 and 4. predicting raw texts
@pytest.fixture
def reviews_run(project, tiny_t5, capsys) -> Path:
    """A one-task run trained from a task file (its labels mapped there, by raw_labels)."""
    argv = ["train", "--task-file", str(project / "reviews-raw.yaml"), "--backbone", str(tiny_t5),
            "--output-dir", str(project / "run"), *TINY]  # fmt: skip
    assert main(argv) == 0, _err(capsys)
    return project / "run"


def _forget_own_tasks():
    """As a new process: the run's own task is known only once something registers it again."""
    for name in [n for n in user._DEFINED]:
        del base._REGISTRY[name], user._DEFINED[name]


def test_predict_texts_is_one_call_and_gives_what_the_cli_writes(reviews_run, tmp_path, capsys):
    _forget_own_tasks()
    texts = ["great kettle, works well", "broke in a week"]
    predicted = attempt.predict_texts(reviews_run, texts)
    assert [list(p) for p in predicted] == [
        ["task", "index", "idx", "source", "prediction", "reference", "scores"]
    ] * 2
    assert [p["source"] for p in predicted] == [f"my_reviews review: {text}" for text in texts]
    assert all(set(p["scores"]) == {"negative", "positive"} and p["prediction"] == max(p["scores"], key=p["scores"].get)
               for p in predicted)  # fmt: skip
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n")
    argv = [
        "predict",
        str(reviews_run),
        "--inputs",
        str(tmp_path / "texts.txt"),
        "--output",
        str(tmp_path / "o.jsonl"),
    ]
    assert main(argv) == 0, _err(capsys)
    written = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert written == predicted
    assert attempt.predict_texts(
        reviews_run, [{"text_of_mine": texts[0]}], columns={"text_of_mine": "review"}
    )[0]["scores"] == pytest.approx(predicted[0]["scores"])
    with pytest.raises(
        ValueError, match=r"Input 1 \(counted from 1\): field\(s\) 'review' missing .* map the keys"
    ):
        attempt.predict_texts(reviews_run, [{"body": "x"}])


def test_predict_reads_jsonl_without_task_csv_with_columns_and_writes_per_label_scores(
    reviews_run, tmp_path, capsys
):
    out = tmp_path / "out.jsonl"
    (tmp_path / "in.jsonl").write_text(
        '{"review": "lovely mug"}\n{"task": "my_reviews", "review": "awful tent"}\n'
    )
    assert (
        main(["predict", str(reviews_run), "--inputs", str(tmp_path / "in.jsonl"), "--output", str(out)]) == 0
    ), _err(capsys)
    first = [json.loads(line) for line in out.read_text().splitlines()]
    assert [p["task"] for p in first] == ["my_reviews"] * 2
    assert all(set(p["scores"]) == {"negative", "positive"} for p in first)

    (tmp_path / "in.csv").write_text('body,id\n"lovely mug",1\nawful tent,2\n')
    argv = ["predict", str(reviews_run), "--inputs", str(tmp_path / "in.csv"), "--output", str(out)]
    assert main(argv) == 2
    err = _err(capsys)
    assert "in.csv, line 2: field(s) 'review' missing for task 'my_reviews' (row has: body, id). Add it to each " \
           "input, or name the column that holds it with --columns COLUMN=FIELD." in err, err  # fmt: skip
    assert "train_config" not in err and "task definition" not in err
    assert main([*argv, "--columns", "body=review", "--task", "my_reviews"]) == 0, _err(capsys)
    second = [json.loads(line) for line in out.read_text().splitlines()]
    assert [p["scores"] for p in second] == [pytest.approx(p["scores"]) for p in first]


# --------------------------------------------------------------------------- 6. evaluate, moved
def test_evaluate_on_a_moved_run_scores_what_it_can_and_points_to_file(project, tiny_t5, tmp_path, capsys):
    data = project / "data"
    data.mkdir()
    for split in ("train", "validation", "test"):
        shutil.copy(project / "pairs-in-words.csv", data / f"{split}.csv")
    shutil.copy(project / "reviews.csv", data / "reviews.csv")
    files = [
        arg
        for split in ("train", "validation", "test")
        for arg in (f"--{split}-file", f"rte={data / f'{split}.csv'}")
    ]
    columns = [f"rte:{c}" if c != "--columns" else c for c in PAIR_COLUMNS]
    argv = ["train", "--task-file", str(project / "reviews-raw.yaml"), "--tasks", "rte", "my_reviews", *files,
            *columns, "--backbone", str(tiny_t5), "--output-dir", str(project / "runs" / "two"), *TINY]  # fmt: skip
    assert main(argv) == 0, _err(capsys)

    moved = tmp_path / "moved"  # the run, and of its data only rte's test file, where the run recorded it
    shutil.copytree(project / "runs" / "two", moved / "runs" / "two")
    (moved / "data").mkdir()
    shutil.copy(data / "test.csv", moved / "data" / "test.csv")
    run = moved / "runs" / "two"
    assert main(["evaluate", str(run), "--out", str(tmp_path / "ev")]) == 0, _err(capsys)
    err = _err(capsys)
    assert "Not scored (test split not readable): my_reviews: No such data file:" in err, err
    assert f"attempt evaluate {run} --file my_reviews=FILE" in err
    scored = json.loads((tmp_path / "ev" / "eval_test.json").read_text())
    results = json.loads((project / "runs" / "two" / "results.json").read_text())
    assert set(scored) == {"rte", "average"} and scored["rte"] == results["test"]["rte"]

    alone = tmp_path / "a" / "b" / "two"  # no data at all: nothing to score, and the way out
    shutil.copytree(run, alone)
    assert main(["evaluate", str(alone)]) == 2
    err = _err(capsys)
    assert err.startswith(
        "attempt evaluate: error: Nothing to score on the test split: rte: No such data file"
    )
    assert f"attempt evaluate {alone} --file rte=FILE --file my_reviews=FILE" in err
    argv = ["evaluate", str(alone), "--tasks", "my_reviews", "--file", str(data / "reviews.csv"), "--columns",
            "review=review", "--out", str(tmp_path / "ev-file")]  # fmt: skip
    assert main(argv) == 0, _err(capsys)
    assert set(json.loads((tmp_path / "ev-file" / "eval_file.json").read_text())) == {"my_reviews", "average"}
