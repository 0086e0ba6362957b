"""Your own tasks, without writing Python: a task file (YAML or JSON) read into a definition and a `Task`.

A task file says where the data is (your CSV / TSV / JSON-lines files, or a Hugging Face dataset), which
columns make the input (optionally through a ``str.format`` template), which column holds the label and how
labels are spelled, and how the task is scored::

    name: product_sentiment
    data:
      files: {train: train.csv, validation: validation.csv, test: test.csv}   # relative to this file
    fields: [text]
    template: "review: {text}"
    label_field: label
    label_words: [negative, positive]      # or raw_labels: {neg: negative, pos: positive}
    metrics: [accuracy, f1]

`read_task_file` checks it (every error names the file and the fix) and returns the *definition*: a plain,
JSON-ready mapping with the data paths made absolute. A run records its definitions in
`TrainConfig.task_definitions` (paths relative to the run folder, `attempt.runs.portable`), so evaluating or
predicting with a run registers its tasks again (`register_definitions`) without the task file.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from attempt.tasks.base import Task, get_task, register_task, registered_task
from attempt.tasks.metrics import METRICS
from attempt.utils.reading import NESTED_TOO_DEEP, nesting_problem
from attempt.utils.textfiles import ROW_FILE_KINDS, ROW_FILE_SUFFIXES, decoded

KEYS = ("name", "kind", "data", "fields", "template", "label_field", "label_words", "raw_labels", "label_range",
        "metrics", "k_shot")  # fmt: skip
REQUIRED = ("name", "data", "fields")
USER_KINDS = ("classification", "regression", "extractive_qa")
DATA_FILE_SPLITS = ("train", "validation", "test")
HUB_KEYS = ("hub_id", "config", "train_split", "validation_split", "test_split")
DEFAULT_METRICS = {"classification": ["accuracy"], "regression": ["pearson", "spearman"],
                   "extractive_qa": ["squad_f1", "squad_exact_match"]}  # fmt: skip
SAVED_ORIGIN = "the run's config (TrainConfig.task_definitions)"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_DEFINED: dict[str, dict[str, Any]] = {}  # the definitions of the user tasks registered in this process
# a task file holds tens of values; YAML aliases (&a / *a) can expand a small one to billions
MAX_VALUES = 100_000


class TaskFileError(ValueError):
    """A task file (or a saved task definition) that cannot define a task; the message names the fix."""


# ------------------------------------------------------------------------------------------- reading
def read_task_file(path: str | Path) -> dict[str, Any]:
    """Read and check a task file (``.yaml``/``.yml`` or ``.json``).

    Returns:
        The definition (see `normalize_definition`), data paths resolved against the file's folder.

    Raises:
        FileNotFoundError: no such file. TaskFileError: a file that is not a valid task definition.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such task file: {path}.")
    text = decoded(path)
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise TaskFileError(f"{path}: not valid JSON ({error}).") from None
        except RecursionError:  # the parser's own stack overflowed
            raise TaskFileError(_too_deep(path, NESTED_TOO_DEEP)) from None
    elif path.suffix.lower() in (".yaml", ".yml"):
        data = _yaml(text, path)
    else:
        raise TaskFileError(f"{path}: a task file is .yaml, .yml or .json; rename it.")
    problem = nesting_problem(data, max_values=MAX_VALUES)
    if problem:
        raise TaskFileError(_too_deep(path, problem))
    return normalize_definition(data, str(path), base=path.parent, check_files=True)


def _yaml(text: str, path: Path) -> Any:
    try:
        import yaml
    except ImportError as error:
        raise ImportError(
            f"Reading {path} needs PyYAML (pip install pyyaml), or write the task file as JSON."
        ) from error
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise TaskFileError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    except RecursionError:  # the parser's own stack overflowed
        raise TaskFileError(_too_deep(path, NESTED_TOO_DEEP)) from None


def _too_deep(path: Path, problem: str) -> str:
    return f"{path}: {problem}; a task file is a few keys deep (name, data: {{files: ...}}, fields, ...). Fix it."


# ------------------------------------------------------------------------------------------ checking
def normalize_definition(
    data: Any, origin: str, base: Path | None = None, check_files: bool = False
) -> dict[str, Any]:
    """Check a task definition and give it its one canonical, JSON-ready form (every key present).

    Args:
        data: the parsed task file, or a saved definition (its canonical form reads back unchanged).
        origin: how errors name where it came from (the task file).
        base: the folder relative data paths are resolved against (None: leave them as they are).
        check_files: refuse data files that do not exist (when reading a task file; a saved run may be
            evaluated where its data is not, and says so only when it reads it).

    Raises:
        TaskFileError: an unknown or missing key, a wrong type, an unknown metric, a template that names a
            field not in `fields`, labels given twice or not at all...
    """
    if not isinstance(data, Mapping):
        raise TaskFileError(
            f"{origin}: a task file holds a mapping of keys ({', '.join(KEYS)}), e.g. 'name: my_task'."
        )
    unknown = sorted(str(key) for key in data if key not in KEYS)
    if unknown:
        raise TaskFileError(f"{origin}: unknown key(s) {', '.join(unknown)}. Valid keys: {', '.join(KEYS)}.")
    missing = [key for key in REQUIRED if data.get(key) is None]
    if missing:
        raise TaskFileError(f"{origin}: missing key(s) {', '.join(missing)}. {_example(missing[0])}")
    name = _name(data["name"], origin)
    labelled = data.get("label_words") is not None or data.get("raw_labels") is not None
    kind = data.get("kind") or ("classification" if labelled else None)
    if kind is None:
        raise TaskFileError(f"{origin}: say what the labels are: label_words (e.g. [negative, positive]) or raw_labels "
                            "for a classification task, or kind: regression / extractive_qa.")  # fmt: skip
    if kind not in USER_KINDS:
        raise TaskFileError(f"{origin}: kind {kind!r} is not one of {', '.join(USER_KINDS)}; a classification "
                            "task gives label_words (or raw_labels) and may leave kind out.")  # fmt: skip
    fields = _fields(data["fields"], origin)
    label_field = _text(data.get("label_field", "label") or "label", "label_field", origin)
    if label_field in fields:
        raise TaskFileError(
            f"{origin}: label_field {label_field!r} is also in fields; the label is not an input."
        )
    return {
        "name": name, "kind": kind, "data": _data(data["data"], origin, base, check_files), "fields": fields,
        "template": _template(data.get("template"), fields, origin), "label_field": label_field,
        **_labels(data, kind, origin), "metrics": _metrics(data.get("metrics"), kind, origin),
        "k_shot": _k_shot(data.get("k_shot"), origin),
    }  # fmt: skip


def _example(key: str) -> str:
    return {
        "name": "Add e.g. 'name: my_task' (lowercase letters, digits, _).",
        "data": "Add e.g. 'data: {files: {train: train.csv, validation: dev.csv}}' or 'data: {hub_id: imdb}'.",
        "fields": "Add the input columns in order, e.g. 'fields: [text]'.",
    }[key]


def _text(value: Any, key: str, origin: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TaskFileError(f"{origin}: {key} must be a non-empty text, got {value!r}.")
    return value


def _name(value: Any, origin: str) -> str:
    name = _text(value, "name", origin)
    if not _NAME.match(name):
        raise TaskFileError(
            f"{origin}: name {name!r} must be lowercase letters, digits and _ (starting with a "
            f"letter), e.g. {re.sub(r'[^a-z0-9_]', '_', name.lower()).strip('_') or 'my_task'!r}."
        )
    try:
        taken = get_task(name)
    except KeyError:
        return name
    if taken.name not in _DEFINED:
        raise TaskFileError(
            f"{origin}: name {name!r} is taken by the built-in task {taken.name!r}; pick another name."
        )
    return name


def _fields(value: Any, origin: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise TaskFileError(
            f"{origin}: fields must list the input columns in order, e.g. 'fields: [text]'; got {value!r}."
        )
    if len(set(value)) != len(value):
        raise TaskFileError(f"{origin}: fields lists a column twice: {value}.")
    return list(value)


def _data(value: Any, origin: str, base: Path | None, check_files: bool) -> dict[str, Any]:
    """``{"files": {split: path}}`` (train and validation required) or the Hub keys with their defaults."""
    if not isinstance(value, Mapping) or ("files" in value) == ("hub_id" in value):
        raise TaskFileError(f"{origin}: data needs either 'files: {{train: ..., validation: ..., test: ...}}' or "
                            f"'hub_id: ...' (with optional {', '.join(HUB_KEYS[1:])}); got {value!r}.")  # fmt: skip
    if "hub_id" in value:
        unknown = sorted(set(value) - set(HUB_KEYS))
        if unknown:
            raise TaskFileError(
                f"{origin}: unknown data key(s) {', '.join(unknown)}. Valid: {', '.join(HUB_KEYS)}."
            )
        defaults = {
            "config": None,
            "train_split": "train",
            "validation_split": "validation",
            "test_split": None,
        }
        return {"hub_id": _text(value["hub_id"], "data.hub_id", origin), **defaults,
                **{k: _text(value[k], f"data.{k}", origin) for k in defaults if value.get(k) is not None}}  # fmt: skip
    if set(value) != {"files"} or not isinstance(value["files"], Mapping):
        raise TaskFileError(f"{origin}: data.files maps splits to files, e.g. {{train: train.csv, validation: dev.csv}}; "
                            "give nothing else beside it.")  # fmt: skip
    files = dict(value["files"])
    unknown, missing = (
        sorted(set(files) - set(DATA_FILE_SPLITS)),
        [s for s in DATA_FILE_SPLITS[:2] if s not in files],
    )
    if unknown or missing:
        raise TaskFileError(f"{origin}: data.files needs train and validation (test optional; without it the "
                            f"validation file is halved into validation and test); unknown: {unknown}, missing: {missing}.")  # fmt: skip
    resolved = {}
    for split in DATA_FILE_SPLITS:
        if split in files:
            resolved[split] = _data_file(files[split], split, origin, base, check_files)
    return {"files": resolved}


def _data_file(value: Any, split: str, origin: str, base: Path | None, check_files: bool) -> str:
    path = Path(_text(value, f"data.files.{split}", origin))
    if path.suffix.lower() not in ROW_FILE_SUFFIXES:
        raise TaskFileError(f"{origin}: data.files.{split} {value!r} must end in {', '.join(ROW_FILE_SUFFIXES)} "
                            f"({ROW_FILE_KINDS}).")  # fmt: skip
    if base is not None and not path.is_absolute():
        path = (base / path).resolve()
    if check_files and not path.is_file():
        raise TaskFileError(
            f"{origin}: data.files.{split}: no such file {path} (paths are relative to the task file)."
        )
    return str(path)


def _template(value: Any, fields: list[str], origin: str) -> str | None:
    """A ``str.format`` template whose every ``{name}`` is one of `fields`."""
    if value is None:
        return None
    template = _text(value, "template", origin)
    fix = "Write {column} for each column listed in fields (add it there), and {{ }} for a literal brace."
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as error:
        raise TaskFileError(
            f"{origin}: template {template!r} is not a format text ({error}). {fix}"
        ) from None
    bad = [name for name in names if name not in fields]
    if bad:
        raise TaskFileError(
            f"{origin}: template {template!r} names {', '.join(map(repr, bad))}, not in fields {fields}. {fix}"
        )
    try:
        template.format_map(dict.fromkeys(fields, "x"))
    except (ValueError, KeyError, IndexError, AttributeError) as error:
        raise TaskFileError(f"{origin}: template {template!r} cannot be filled in ({error}). {fix}") from None
    return template


def _labels(data: Mapping[str, Any], kind: str, origin: str) -> dict[str, Any]:
    """``label_words`` (id order), ``raw_labels`` (``[[raw, word], ...]`` or None) and ``label_range``."""
    words, raw, label_range = data.get("label_words"), data.get("raw_labels"), data.get("label_range")
    if kind != "classification":
        if words is not None or raw is not None:
            raise TaskFileError(
                f"{origin}: a {kind} task has no label_words / raw_labels; remove them or set kind: classification."
            )
        if label_range is not None and (kind != "regression" or not _is_range(label_range)):
            raise TaskFileError(
                f"{origin}: label_range is [lowest, highest] of a regression score, e.g. [0, 5]."
            )
        return {
            "label_words": None,
            "raw_labels": None,
            "label_range": list(label_range) if label_range else None,
        }
    pairs = _pairs(raw) if raw is not None else None
    if pairs is not None and not (
        isinstance(pairs, list) and all(isinstance(p, tuple) and len(p) == 2 for p in pairs)
    ):
        raise TaskFileError(
            f"{origin}: raw_labels maps column values to words, e.g. {{neg: negative}}; got {raw!r}."
        )
    if pairs is not None and words == [p[1] for p in pairs]:
        words = None  # the canonical form, which lists both
    if (words is None) == (raw is None) or label_range is not None:
        raise TaskFileError(f"{origin}: a classification task gives label_words (e.g. [negative, positive]: the column "
                            "holds the word or its id 0, 1, ...) or raw_labels (e.g. {neg: negative, pos: positive}), "
                            "one of them, and no label_range.")  # fmt: skip
    if pairs is not None:
        raws = [p[0] for p in pairs]
        if len({str(r) for r in raws}) != len(raws):
            raise TaskFileError(f"{origin}: raw_labels has a column value twice: {raws}.")
        words = [p[1] for p in pairs]
    if (
        not isinstance(words, list)
        or len(words) < 2
        or not all(isinstance(w, str) and w.strip() for w in words)
    ):
        raise TaskFileError(
            f"{origin}: a classification task needs at least 2 label words (text); got {words!r}."
        )
    if len({w.lower() for w in words}) != len(words):
        raise TaskFileError(f"{origin}: label words must differ (case-insensitively); got {words}.")
    return {"label_words": list(words), "raw_labels": [list(p) for p in pairs] if raw is not None else None,
            "label_range": None}  # fmt: skip


def _pairs(raw: Any) -> Any:
    """raw_labels as ``[(raw, word), ...]``: a task file's mapping, or the canonical list of pairs."""
    if isinstance(raw, Mapping):
        return list(raw.items())
    return [tuple(p) if isinstance(p, list) else p for p in raw] if isinstance(raw, list) else raw


def _is_range(value: Any) -> bool:
    return (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value) and value[0] < value[1])  # fmt: skip


def _metrics(value: Any, kind: str, origin: str) -> list[str]:
    if value is None:
        return list(DEFAULT_METRICS[kind])
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names:
        raise TaskFileError(f"{origin}: metrics is a list of metric names, e.g. [accuracy]; got {value!r}.")
    unknown = [name for name in names if not isinstance(name, str) or name not in METRICS]
    if unknown:
        raise TaskFileError(
            f"{origin}: unknown metric(s) {', '.join(map(repr, unknown))}. Known: {', '.join(METRICS)}."
        )
    return list(names)


def _k_shot(value: Any, origin: str) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise TaskFileError(
            f"{origin}: k_shot is the number of training examples per class (>= 1), got {value!r}."
        )
    return value


# ------------------------------------------------------------------------------------------ registry
def task_from_definition(definition: Mapping[str, Any], origin: str) -> Task:
    """The `Task` of a canonical definition (from `normalize_definition`)."""
    data = definition["data"]
    files = data.get("files")
    words, raw = definition["label_words"], definition["raw_labels"]
    return Task(
        name=definition["name"], hub_id=data.get("hub_id", "local files"), config=data.get("config"),
        kind=definition["kind"], fields=tuple(definition["fields"]), official_train_size=0,
        metrics=tuple(definition["metrics"]), label_field=definition["label_field"],
        label_words=tuple(words) if words else None, raw_labels=tuple(r for r, _ in raw) if raw else None,
        train_split=data.get("train_split", "train"), validation_split=data.get("validation_split", "validation"),
        test_split=("test" if "test" in files else None) if files else data.get("test_split"),
        small=True,  # no test split: the validation split is halved into validation and test
        label_range=tuple(definition["label_range"]) if definition["label_range"] else None,
        template=definition["template"], data_files=tuple(files.items()) if files else (), defined_in=origin,
    )  # fmt: skip


def register_definition(definition: Mapping[str, Any], origin: str = SAVED_ORIGIN) -> dict[str, Any]:
    """Register the task of `definition` (checked first); returns its canonical form.

    The same definition again is a no-op, and one that differs only in where its data files are (a run folder
    moved with its data) replaces it; any other difference from a task of that name is refused, so two runs
    in one process never silently share a name for two tasks.

    Raises:
        TaskFileError: an invalid definition, or a name taken by a built-in or a different user task.
    """
    definition = normalize_definition(definition, origin)
    name = definition["name"]
    known = _DEFINED.get(name)
    if known is not None and _without_files(known) != _without_files(definition):
        raise TaskFileError(f"{origin}: a different task named {name!r} is already registered in this process; "
                            "give one of them another name.")  # fmt: skip
    if known != definition:
        register_task(task_from_definition(definition, origin), replace=registered_task(name) is not None)
        _DEFINED[name] = definition
    return definition


def _without_files(definition: Mapping[str, Any]) -> dict[str, Any]:
    return {**definition, "data": {k: v for k, v in definition["data"].items() if k != "files"}}


def normalize_definitions(
    definitions: Mapping[str, Any], origin: str = SAVED_ORIGIN, base: Path | None = None
) -> dict[str, dict[str, Any]]:
    """Check every ``{name: definition}`` (a run's `TrainConfig.task_definitions`) and return them canonical
    (`normalize_definition`), registering nothing.

    Args:
        definitions: ``{name: definition}``.
        origin: how errors name where they came from.
        base: the folder relative data paths are resolved against (None: leave them as they are).

    Raises:
        TaskFileError: not a mapping, a key that is not its definition's name, or `normalize_definition`'s errors.
    """
    if not isinstance(definitions, Mapping):
        raise TaskFileError(
            f"{origin}: task_definitions maps task names to definitions; got {definitions!r}."
        )
    checked = {}
    for name, definition in definitions.items():
        if not isinstance(definition, Mapping) or definition.get("name") != name:
            raise TaskFileError(
                f"{origin}: task_definitions[{name!r}] must be that task's definition (its name {name!r})."
            )
        checked[name] = normalize_definition(definition, origin, base=base)
    return checked


def register_definitions(
    definitions: Mapping[str, Any], origin: str = SAVED_ORIGIN, base: Path | None = None
) -> dict[str, dict[str, Any]]:
    """Register every ``{name: definition}`` (a run's `TrainConfig.task_definitions`); returns them canonical.
    Registering the same definitions again is a no-op (`register_definition`).

    Args:
        definitions: ``{name: definition}``.
        origin: how errors name where they came from.
        base: the folder relative data paths are resolved against (None: leave them as they are).

    Raises:
        TaskFileError: `normalize_definitions`' and `register_definition`'s errors.
    """
    checked = normalize_definitions(definitions, origin, base)
    return {name: register_definition(definition, origin) for name, definition in checked.items()}


def registered_definitions(names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The definitions of those of `names` that are user tasks registered in this process, canonical."""
    return {name: _DEFINED[name] for name in names if name in _DEFINED}


def with_data_paths(
    definitions: Mapping[str, Any] | None, convert: Callable[[str], str]
) -> dict[str, Any] | None:
    """`definitions` with `convert` applied to the path of every data file (e.g. to make them relative to the
    folder that records them); other keys, and definitions of Hub tasks, are kept as they are."""
    if not definitions or not isinstance(definitions, Mapping):  # normalize_definitions refuses a non-mapping
        return definitions
    converted = {}
    for name, definition in definitions.items():
        data = definition.get("data") if isinstance(definition, Mapping) else None
        files = data.get("files") if isinstance(data, Mapping) else None
        if isinstance(files, Mapping):
            files = {split: convert(path) if isinstance(path, str) else path for split, path in files.items()}
            definition = {
                **definition,
                "data": {**definition["data"], "files": files},
            }  # keeps other data keys
        converted[name] = definition
    return converted


__all__ = ["TaskFileError", "normalize_definition", "normalize_definitions", "read_task_file", "register_definition",
           "register_definitions", "registered_definitions", "task_from_definition", "with_data_paths"]  # fmt: skip
