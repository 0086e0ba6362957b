"""Property-based tests of every reader of user input: task files and recipes (YAML/JSON), row files (CSV, TSV,
JSON lines), a prompt library's JSON and weights, a run's saved train_config.json.

The property, for any input: the reader returns something usable (JSON-ready, as what reads it next expects)
or raises the library's own error with a one-line message (TaskFileError, DataError, CorruptFile, or
TrainConfig's plain ValueError naming the key); never another exception (a parser's JSONDecodeError is a
ValueError, but not ours), never a hang (each example gets a few seconds), never a file written. Bounded: a
fixed number of examples each, the same ones every run (derandomized), the whole file well under a minute on one
core; FUZZ_EXAMPLES=1000 hunts longer, at random.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import string
import tempfile
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attempt import cli
from attempt.config import TrainConfig
from attempt.data.sources import load_user_file
from attempt.prompts.library import PromptLibrary, SourcePrompt
from attempt.runs.build import read_run_config
from attempt.tasks.user import KEYS, TaskFileError, read_task_file
from attempt.utils.reading import CorruptFile
from attempt.utils.textfiles import DataError, numbered_rows

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", 60)),
    deadline=4000,
    derandomize=not os.environ.get("FUZZ_EXAMPLES"),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
HANG_S = 10  # an example running this long is a hang
# a config's errors: a damaged file, a bad task definition or data file, TrainConfig's ValueError naming the key
CONFIG_ERRORS = (CorruptFile, TaskFileError, DataError, ValueError)


pytestmark = pytest.mark.usefixtures("forget_registered_tasks")  # tests here register tasks on purpose


# ------------------------------------------------------------------------------------------- strategies
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=12),
    st.sampled_from(["", "rte", "train.csv", "accuracy", "{text}", "label", "-1", "1e-2", "nan"]),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
# YAML that a generic value does not produce: tags, aliases, dates, binary, merge keys, deep or odd nesting
yaml_snippets = st.sampled_from([
    "name: 2001-01-01", "name: !!binary aGVsbG8=", "fields: !!python/object:os.system {}", "a: &a [*a]",
    "? [a, b]\n: c", "<<: {name: x}", "fields: &f [text]\nlabel_words: *f", "data: {files: {train: 1}}",
    "name: [[[[[[[[]]]]]]]]", "\t- x", "%YAML 1.1\n---\nname: x", "--- !!set {a, b}", "metrics: [[accuracy]]",
    "data: {hub_id: [x]}", "data: {hub_id: imdb, config: 2001-01-01}", "label_words: [a, A]", "k_shot: 1e3",
    "template: '{text!r}'", "template: '{0}'", "template: '{text.__class__}'", "raw_labels: {[1]: a}",
    "raw_labels: [[1, a], [2]]", "label_range: [1, nan]", "fields: ['']", "label_field: text",
])  # fmt: skip


GOOD_TASK = {"name": "mine", "data": {"files": {"train": "train.csv", "validation": "dev.tsv"}}, "fields": ["text"],
             "label_words": ["neg", "pos"]}  # fmt: skip


def task_definitions() -> st.SearchStrategy:
    """A valid task file with up to three keys changed (a plausible value or any value) or removed."""
    plausible = {
        "name": st.sampled_from(["mine", "rte", "My Task", "", "x" * 300]),
        "kind": st.sampled_from(["classification", "regression", "extractive_qa", "other"]),
        "data": st.one_of(
            st.fixed_dictionaries({"files": st.dictionaries(
                st.sampled_from(["train", "validation", "test", "dev"]),
                st.sampled_from(["train.csv", "dev.tsv", "missing.csv", "rows.jsonl", "x.parquet", "/", "a\x00b.csv"]),
                max_size=4)}),
            st.fixed_dictionaries({"hub_id": st.sampled_from(["imdb", ""])},
                                  optional={"config": values, "test_split": values, "bogus": values}),
        ),
        "fields": st.lists(st.sampled_from(["text", "label", "", "a b"]), max_size=3),
        "template": st.sampled_from(["{text}", "{other}", "{", "}", "{text:>{width}}", "{text[0]}", "x {{y}}"]),
        "label_field": st.sampled_from(["label", "text", ""]),
        "label_words": st.lists(st.sampled_from(["neg", "pos", "NEG", ""]), max_size=3),
        "raw_labels": st.dictionaries(st.sampled_from(["n", "p", "1"]), st.sampled_from(["neg", "pos"]), max_size=3),
        "label_range": st.lists(st.floats(), max_size=3),
        "metrics": st.lists(st.sampled_from(["accuracy", "f1", "bleu", "pearson"]), max_size=3),
        "k_shot": st.integers(-2, 3),
        "extra": values,
    }  # fmt: skip
    assert set(plausible) == {*KEYS, "extra"}  # every key of a task file is changed somewhere
    change = st.sampled_from(sorted(plausible)).flatmap(
        lambda key: st.tuples(st.just(key), st.one_of(plausible[key], values, st.just(REMOVE)))
    )
    return st.lists(change, max_size=3).map(
        lambda changes: {k: v for k, v in {**GOOD_TASK, **dict(changes)}.items() if v is not REMOVE}
    )


REMOVE = object()  # a change that removes the key


def as_text(data, how: str) -> str:
    if how == "json":
        return json.dumps(data)
    return yaml.safe_dump(data, allow_unicode=True)


file_texts = st.one_of(
    st.text(max_size=200),
    st.lists(yaml_snippets, min_size=1, max_size=4).map("\n".join),
)


# ---------------------------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def no_hang(seconds: int = HANG_S):
    """Fail an example that runs longer than `seconds` (a deadline only reports it after it ends)."""

    def stop(signum, frame):
        raise TimeoutError(f"no answer in {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def folder():
    """A fresh folder, the working directory too; on leaving, nothing may have been written beyond what the
    example wrote itself (`written`)."""
    with tempfile.TemporaryDirectory() as name, contextlib.chdir(name):
        root = Path(name)
        written: set[str] = set()
        yield root, written
        found = {str(p.relative_to(root)) for p in root.rglob("*")}
        assert found <= written, f"files written by a reader: {sorted(found - written)}"


def write(root: Path, written: set[str], relative: str, data: str | bytes) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    for parent in Path(relative).parents:
        if str(parent) != ".":
            written.add(str(parent))
    path.write_bytes(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
    written.add(relative)
    return path


def reads_or_refuses(errors: tuple[type[ValueError], ...], read, *args):
    """`read(*args)`, or None when it raised one of the library's `errors` with a one-line message. Plain
    ValueError counts only when named, and only raised as itself (TrainConfig's errors naming a key): a parser's
    JSONDecodeError or UnicodeDecodeError (ValueErrors too) escaping a reader is what this test is for."""
    with no_hang():
        try:
            return read(*args)
        except Exception as error:  # noqa: BLE001 - anything else fails the test, with its name and message
            own = type(error) is ValueError or type(error).__module__.startswith("attempt.")
            assert isinstance(error, errors) and own, (
                f"{type(error).__module__}.{type(error).__name__}: {error}"
            )
            message = str(error)
            assert message and "\n" not in message and "\r" not in message, repr(message)
            return None


# ------------------------------------------------------------------------------------------- task files
@FUZZ
@given(data=task_definitions(), how=st.sampled_from(["yaml", "json"]))
def test_any_task_definition_loads_json_ready_or_is_a_one_line_error(data, how):
    with folder() as (root, written):
        write(root, written, "train.csv", "text,label\ngood,pos\nbad,neg\n")
        write(root, written, "dev.tsv", "text\tlabel\nfine\tpos\n")
        path = write(root, written, f"task.{how}", as_text(data, how))
        definition = reads_or_refuses((TaskFileError, DataError), read_task_file, path)
        if definition is not None:
            json.dumps(definition, allow_nan=False)  # what a run records in train_config.json


@FUZZ
@given(text=file_texts, suffix=st.sampled_from([".yaml", ".json"]))
def test_any_task_file_text_loads_or_is_a_one_line_error(text, suffix):
    with folder() as (root, written):
        path = write(root, written, f"task{suffix}", text)
        definition = reads_or_refuses((TaskFileError, DataError), read_task_file, path)
        if definition is not None:
            json.dumps(definition, allow_nan=False)


# ---------------------------------------------------------------------------------------------- recipes
recipes = st.one_of(
    file_texts,
    st.dictionaries(
        st.sampled_from(["mode", "tasks", "backbone", "max_steps", "learning_rate", "attempt", "prompt_name",
                         "task_definitions", "data_files", "report_to", "k_shot", "pad_to", "bogus"]),
        values, max_size=4,
    ).map(lambda data: yaml.safe_dump(data, allow_unicode=True)),
)  # fmt: skip


@settings(FUZZ, max_examples=int(os.environ.get("FUZZ_EXAMPLES", 40)))
@given(text=recipes)
def test_any_recipe_prints_its_config_or_is_one_error_line_with_exit_code_2(text):
    with folder() as (root, written):
        path = write(root, written, "recipe.yaml", text)
        err = io.StringIO()
        with no_hang(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            code = cli.main(["train", "--config", str(path), "--print-config"])
        assert (code, err.getvalue().count("\n")) in ((0, 0), (2, 1)), err.getvalue()
        assert code == 0 or err.getvalue().startswith("attempt train: error: "), err.getvalue()
        config = reads_or_refuses(CONFIG_ERRORS, TrainConfig.from_yaml, path)
        if config is not None:
            json.dumps(config.to_dict(), allow_nan=False)  # what the run writes as train_config.json


# -------------------------------------------------------------------------------------------- row files
table_cells = st.text(alphabet=string.printable + "é\u2028\x00\ufeff", max_size=8)
rows = st.one_of(
    st.text(max_size=200),
    st.lists(st.lists(table_cells, min_size=1, max_size=3), max_size=5).map(
        lambda lines: "\n".join(",".join(cells) for cells in [["sentence", "label"], *lines])
    ),
    st.lists(st.dictionaries(st.sampled_from(["sentence", "label", "question", "context", "answers", "x"]),
                             values, max_size=3), max_size=4).map(
        lambda objects: "\n".join(json.dumps(o) for o in objects)),
    st.binary(max_size=100),
)  # fmt: skip


@FUZZ
@given(
    content=rows,
    suffix=st.sampled_from([".csv", ".tsv", ".txt", ".jsonl", ".json"]),
    task=st.sampled_from(["sst2", "stsb", "squad"]),  # classification, regression, extractive QA
    columns=st.sampled_from([None, {"text": "sentence"}, {"x": "label"}]),
)
def test_any_row_file_loads_valid_rows_or_is_a_one_line_error(content, suffix, task, columns):
    with folder() as (root, written):
        path = write(root, written, f"rows{suffix}", content)
        numbered = reads_or_refuses((DataError,), numbered_rows, path)
        loaded = reads_or_refuses((DataError,), load_user_file, path, task, columns)
        if loaded is not None:
            assert numbered is not None and len(loaded) == len(numbered) > 0
            json.dumps(loaded)


# ------------------------------------------------------------------------------------------ the library
@FUZZ
@given(meta=st.one_of(values.map(json.dumps), st.text(max_size=80)), weights=st.sampled_from(["good", "bytes"]),
       junk=st.binary(max_size=64))  # fmt: skip
def test_any_prompt_json_or_weights_load_or_are_a_one_line_error(meta, weights, junk):
    with folder() as (root, written):
        library = PromptLibrary(root)
        library.add(SourcePrompt("good", torch.ones(2, 4)))
        written.update(str(p.relative_to(root)) for p in root.rglob("*"))  # the library's own files
        write(
            root,
            written,
            "odd.safetensors",
            (root / "good.safetensors").read_bytes() if weights == "good" else junk,
        )
        write(root, written, "odd.json", meta)
        prompt = reads_or_refuses((CorruptFile,), library.get, "odd")
        if prompt is not None:
            json.dumps(prompt.metadata())
        with no_hang():
            entries, damaged = library.scan()  # never raises: one damaged prompt hides nothing
        assert [e["name"] for e in entries] == ["good"] + (["odd"] if prompt is not None else [])
        assert list(damaged) == ([] if prompt is not None else ["odd"])


# ----------------------------------------------------------------------------------------- saved configs
saved_configs = st.one_of(
    st.text(max_size=120),
    st.dictionaries(
        st.sampled_from(["mode", "tasks", "output_dir", "library", "data_dir", "attempt", "task_definitions",
                         "data_files", "max_steps", "seed", "unknown"]),
        values, max_size=5,
    ).map(json.dumps),
)  # fmt: skip


@FUZZ
@given(text=saved_configs)
def test_any_saved_train_config_reads_back_or_is_a_one_line_error(text):
    with folder() as (root, written):
        write(root, written, "run/best/.keep", "")
        write(root, written, "run/train_config.json", text)
        config = reads_or_refuses(CONFIG_ERRORS, read_run_config, root / "run")
        if config is not None:
            json.dumps(config.to_dict(), allow_nan=False)
