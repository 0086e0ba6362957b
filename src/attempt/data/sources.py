"""Loading benchmark data: official splits from a local mirror or the Hub, and your own files.

One loading path, `load_split(task, split, data_dir=None)`:

- a local mirror ``<data_dir>/<hub_id>/<config>/<split>.jsonl`` (one JSON object per line, the Hub's field
  names; ``config`` is ``"default"`` for datasets without one) when `data_dir` is given or the environment
  variable ``ATTEMPT_DATA_DIR`` is set;
- otherwise the Hugging Face Hub through ``datasets.load_dataset`` (``pip install attempt-tuning[data]``).

A task defined in a task file (`attempt.tasks.user`) with ``files:`` is read from those files instead, and its
errors end with the fix in the task file.

`load_user_file` reads your own CSV / TSV / JSONL file (UTF-8; Excel's byte-order mark is fine) with a column
mapping. Every row is validated (fields present and text, label inside the label set or score range) and
errors name the file, the line (counted from 1, as an editor shows it) and the field; rows that come from
the Hub are numbered from 1 too. The text-level reading is `attempt.utils.textfiles`, the paper's splits of these
rows `attempt.data.splits`, collating rows into batches `attempt.data.collate`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from attempt.tasks import Task, get_task
from attempt.utils.reading import NESTED_TOO_DEEP, nesting_problem
from attempt.utils.textfiles import DataError, numbered_jsonl, numbered_rows

DATA_DIR_ENV = "ATTEMPT_DATA_DIR"


class MissingSplitError(FileNotFoundError):
    """A split that is not in the local mirror; the message names the path expected."""


# --------------------------------------------------------------------------------------------- loading
def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The mirror directory to read: `data_dir`, else ``$ATTEMPT_DATA_DIR``, else None (the Hub)."""
    chosen = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV) or None
    return Path(chosen) if chosen is not None else None


def mirror_path(task: Task | str, split: str, data_dir: str | os.PathLike) -> Path:
    """The file ``<data_dir>/<hub_id>/<config or "default">/<split>.jsonl`` that holds a split."""
    task = get_task(task)
    return Path(data_dir) / task.hub_id / (task.config or "default") / f"{split}.jsonl"


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read one JSON object per line (blank lines skipped; `attempt.utils.textfiles.numbered_jsonl` keeps the line
    numbers).

    Raises:
        DataError: a line that is not a JSON object, or not UTF-8 (the message names file and line).
    """
    return [row for _, row in numbered_jsonl(path)]


def _read_mirror(task: Task, split: str, data_dir: Path) -> tuple[list[dict[str, Any]], list[int]]:
    path = mirror_path(task, split, data_dir)
    if not path.is_file():
        folder = path.parent
        if folder.is_dir():
            existing = sorted(p.stem for p in folder.glob("*.jsonl"))
            found = f"Splits in {folder}: {', '.join(existing) or 'none'}."
        else:
            found = f"The folder {folder} does not exist."
        raise MissingSplitError(
            f"Task {task.name!r}: split {split!r} is not in the local mirror; expected the file {path}. "
            f"{found} Pick an existing split, add the file, or unset data_dir/{DATA_DIR_ENV} to use the Hub."
        )
    numbered = numbered_jsonl(path)
    return [row for _, row in numbered], [line for line, _ in numbered]


def _read_hub(task: Task, split: str) -> list[dict[str, Any]]:
    try:
        import datasets
    except ImportError as error:
        raise ImportError(
            f"Loading {task.hub_id!r} from the Hugging Face Hub needs the 'datasets' package: "
            f"pip install attempt-tuning[data] (or pass data_dir= / set {DATA_DIR_ENV} to a local mirror)."
        ) from error
    dataset = datasets.load_dataset(task.hub_id, task.config, split=split)
    return [dict(row) for row in dataset]


def where(source: str, index: int, lines: Sequence[int] | None) -> str:
    """How errors name row `index` (0-based) of `source`: ``"<file>, line 7"`` when the rows' file lines are
    known, else ``"<source>, row 3 (counted from 1)"``."""
    return (
        f"{source}, line {lines[index]}"
        if lines is not None
        else f"{source}, row {index + 1} (counted from 1)"
    )


def _shown(value: Any) -> str:
    """A JSON value as an error shows it: what it is, in the words of the file it came from."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    if isinstance(value, list):
        return f"a list ({value!r})"
    return f"an object ({value!r})" if isinstance(value, Mapping) else repr(value)


def _fix(task: Task, fix: str) -> str:
    """The fix an error suggests: `fix`, or for a task defined in a task file, what to change there."""
    if task.defined_in is None:
        return fix
    return (
        f"Fix the file, or the task definition in {task.defined_in}: `fields:` and `label_field:` name its "
        f"columns, `label_words:`, `raw_labels:` or `label_range:` its labels, `files:` its data files."
    )


def check_fields(
    row: Mapping[str, Any], task: Task, at: str, also: Sequence[str] = (), fix: str | None = None
) -> None:
    """Check that `row` has each of the task's fields (and the fields `also` names), the task's as text (a list
    of strings for `task.list_fields`): a null, a number or a list would otherwise reach the model as "None",
    "12345" or "['x']".

    Args:
        row, task: the row and its task.
        at: how the error names the row (the file and line, or the row).
        also: other fields it needs (the label field).
        fix: what a missing field's error suggests (default: map the columns, or fix the task file); inputs to
            predict say how to give the field, not how to change a saved run.

    Raises:
        DataError: naming `at` (the file and line, or the row) and the field.
    """
    missing = [name for name in (*task.fields, *also) if name not in row]
    if missing:
        fix = fix if fix is not None else _fix(task, "Map your columns with columns={...}.")
        raise DataError(
            f"{at}: field(s) {', '.join(map(repr, missing))} missing for task {task.name!r} "
            f"(row has: {', '.join(k if k.isprintable() else repr(k) for k in map(str, row))}). {fix}"
        )
    for name in task.fields:
        value = row[name]
        if name in task.list_fields:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise DataError(f"{at}, field {name!r}: expected a list of strings, got {_shown(value)}.")
        elif not isinstance(value, str):
            raise DataError(
                f"{at}, field {name!r}: expected text, got {_shown(value)}. Quote it as a JSON string."
            )


def validate_rows(
    rows: Sequence[Mapping[str, Any]], task: Task, source: str, lines: Sequence[int] | None = None
) -> None:
    """Check that a split is non-empty and every row has the task's fields, as text, and a valid label.

    Args:
        rows: the rows.
        task: the task they belong to.
        source: how to name their origin in errors (a file path, or "hub_id/config split").
        lines: the file line of each row, when they come from a file (errors then name the line).

    Raises:
        DataError: naming the source, the line (or the row, counted from 1) and the field.
    """
    if not rows:
        raise DataError(
            f"Task {task.name!r}: {source} has no rows (empty split). {_fix(task, 'Give a split with rows.')}"
        )
    for index, row in enumerate(rows):
        at = where(source, index, lines)
        check_fields(row, task, at, also=(task.label_field,))
        try:
            task.label_of(row)
        except (ValueError, TypeError) as error:
            fix = "" if task.defined_in is None else f" {_fix(task, '')}"
            raise DataError(f"{at}, field {task.label_field!r}: {error}{fix}") from error


def load_split(
    task: Task | str,
    split: str,
    data_dir: str | os.PathLike | None = None,
    labels: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Load one official split of a task as a list of raw rows (the Hub's field names).

    Args:
        task: a `Task` or its name.
        split: the split name (``"train"``, ``"validation"``, ``"validation_matched"``, ...).
        data_dir: a local mirror; None means ``$ATTEMPT_DATA_DIR`` if set, else the Hugging Face Hub.
        labels: ``{your value: label}`` for the labels of a task file's own files (`load_user_file`).

    Returns:
        The rows, in file order. MRQA tasks keep only the rows of their ``subset``.

    Raises:
        MissingSplitError: the mirror lacks the file (the message names the path and the splits present).
        ImportError: the Hub is needed but ``datasets`` is not installed.
        DataError: an empty split (or no row of the MRQA subset), a missing field, an invalid label.
    """
    task = get_task(task)
    if task.data_files:  # a user task's own files (`attempt.tasks.user`)
        files = dict(task.data_files)
        if split not in files:
            raise MissingSplitError(
                f"Task {task.name!r} has no {split!r} file; its files: {', '.join(files)}."
            )
        return load_user_file(files[split], task, labels=labels)
    folder = resolve_data_dir(data_dir)
    lines: list[int] | None = None
    if folder is not None:
        rows, lines = _read_mirror(task, split, folder)
        source = str(mirror_path(task, split, folder))
    else:
        rows = _read_hub(task, split)
        source = f"{task.hub_id}/{task.config} split {split!r}"
    if task.subset is not None:
        if rows and "subset" not in rows[0]:
            raise DataError(f"{source}: rows have no 'subset' field to select {task.subset!r} by.")
        present = sorted({str(row.get("subset")) for row in rows})
        kept = [i for i, row in enumerate(rows) if row.get("subset") == task.subset]
        rows, lines = [rows[i] for i in kept], [lines[i] for i in kept] if lines is not None else None
        if not rows:
            raise DataError(
                f"Task {task.name!r}: {source} has no rows of subset {task.subset!r} "
                f"(subsets present: {', '.join(present) or 'none'}). No other dataset is substituted."
            )
    validate_rows(rows, task, source, lines)
    return rows


def label_map(labels: Mapping[str, str] | None, task: Task) -> dict[str, Any]:
    """``{your value: label}`` (`TrainConfig.data_files`' ``labels``, ``--labels``) checked against the task:
    each label a label word (any case) or its id, given back in the form the label column holds (the id, or a
    task file's raw label).

    Raises:
        ValueError: the task has no label words (regression, QA), or a label that is not one of them.
    """
    if not labels:
        return {}
    if not task.is_classification:
        raise ValueError(f"Task {task.name!r} is {task.kind}: its labels are not words, so they cannot be mapped; "
                         "drop --labels (data_files labels) for it.")  # fmt: skip
    words = [word.lower() for word in task.label_words]
    mapped = {}
    for value, label in labels.items():
        text = str(label).strip()
        index = words.index(text.lower()) if text.lower() in words else int(text) if text.isdigit() else -1
        if not 0 <= index < len(words):
            raise ValueError(f"--labels {value}={label}: {label!r} is not a label of task {task.name!r}; "
                             f"its labels: {', '.join(task.label_words)} (or their ids 0..{len(words) - 1}).")  # fmt: skip
        mapped[str(value).strip()] = task.raw_labels[index] if task.raw_labels is not None else index
    return mapped


def read_label(value: Any, task: Task, at: str, labels: Mapping[str, str] | None = None) -> Any:
    """One label cell as the task's label column holds it (a label word or id, a spelling `labels` maps, a
    task file's raw label, a score, answers), checked: an input to predict may carry its label.

    Raises:
        DataError: naming `at` and the field, when the task has no such label.
    """
    try:
        coerced = _coerce_label(value, task, label_map(labels, task))
        task.label_of({task.label_field: coerced})
    except (ValueError, TypeError) as error:
        fix = " Map it onto the task's labels with --labels VALUE=LABEL." if task.is_classification else ""
        raise DataError(f"{at}, field {task.label_field!r}: {error}{fix}") from None
    return coerced


def _coerce_label(value: Any, task: Task, labels: Mapping[str, Any] | None = None) -> Any:
    """Turn a text cell into the task's label form (id, raw label, float, or list of answers); a cell that is
    not a number (regression) stays text, for `Task.label_of` to refuse. `labels` (`label_map`) comes first.

    Raises:
        ValueError: a QA cell that starts like JSON (``[`` or ``{``) but is not.
    """
    key = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if labels and key in labels:
        return labels[key]
    if not isinstance(value, str):
        return value
    text = value.strip()
    if task.kind == "regression":
        try:
            return float(text)
        except ValueError:
            return value
    if task.kind == "extractive_qa":
        if text[:1] not in ("[", "{"):
            return text
        try:
            answers = json.loads(text)
            problem = nesting_problem(answers)
        except json.JSONDecodeError as error:
            problem = str(error)
        except RecursionError:  # the parser's own stack overflowed
            problem = NESTED_TOO_DEEP
        if problem:
            raise ValueError(
                f"not a JSON list of answers ({problem}): {text[:60]!r}. Write one answer as plain "
                'text, several as ["a", "b"].'
            )
        return answers
    # a text cell "1" is the raw label 1 of a task file's `raw_labels: {1: ...}`
    if task.raw_labels is not None:
        return next((raw for raw in task.raw_labels if str(raw) == text), text)
    words = [word.lower() for word in task.label_words]
    if text.lower() in words:
        return words.index(text.lower())
    return int(text) if text.lstrip("-").isdigit() else value


def load_user_file(
    path: str | os.PathLike,
    task: Task | str,
    columns: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Read your own CSV (``.csv``), TSV (``.tsv``/``.txt``) or JSON-lines (``.jsonl``/``.json``) file.

    Args:
        path: the file; CSV/TSV need a header row.
        task: the task the rows are for.
        columns: ``{your_column: task_field}`` renames, e.g. ``{"premise": "sentence1"}`` to use a file with
            a ``premise`` column for RTE. Labels may be ids (``"1"``), label words (``"entailment"``) or,
            for QA, an answer string or a JSON list of answers.
        labels: ``{your_value: label}`` for labels spelled otherwise, e.g. ``{"entails": "entailment"}``
            (`label_map`); values it does not name are read as above.

    Returns:
        The rows with the task's field names, validated.

    Raises:
        DataError: a mapped column that is not in the file, a missing field, a field that is not text, an
            invalid label, a CSV record that does not fit the header, bytes that are not UTF-8, no rows; the
            message names the file line (counted from 1).
        FileNotFoundError: the file does not exist.
    """
    task = get_task(task)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such data file: {path}.")
    mapped = label_map(labels, task)
    numbered = numbered_rows(path)
    rows, lines = [row for _, row in numbered], [line for line, _ in numbered]
    columns = dict(columns or {})
    if rows:
        unknown = [name for name in columns if name not in rows[0]]
        if unknown:
            raise DataError(
                f"{path}: column(s) {', '.join(map(repr, unknown))} given in columns= are not in the file "
                f"(columns: {', '.join(rows[0])}). The mapping is {{file_column: task_field}}."
            )
    renamed, spelled = [], []  # the rows with the task's names and labels; each label as the file spells it
    for row, line in zip(rows, lines, strict=True):
        row = {columns.get(name, name): value for name, value in row.items()}
        spelled.append(row.get(task.label_field))
        if task.label_field in row:
            try:
                row[task.label_field] = _coerce_label(row[task.label_field], task, mapped)
            except ValueError as error:
                raise DataError(f"{path}, line {line}, field {task.label_field!r}: {error}") from None
        renamed.append(row)
    if task.is_classification:
        _check_labels(path, task, spelled, renamed, lines)
    validate_rows(renamed, task, str(path), lines)
    return renamed


def _check_labels(
    path: Path, task: Task, spelled: Sequence[Any], rows: Sequence[Mapping[str, Any]], lines: Sequence[int]
) -> None:
    """Refuse a file whose labels are not the task's, naming every value outside the label set (as the file
    spells them, most frequent first) and the option that maps them: a file that spells its labels its own
    way (``entails``) does so on every row, and one error per row would show them one at a time."""
    seen: dict[str, int] = {}
    first = None
    for value, row, line in zip(spelled, rows, lines, strict=True):
        if task.label_field not in row:
            continue  # validate_rows names the missing field
        try:
            task.label_of(row)
        except (ValueError, TypeError) as error:
            first = first or (line, error)
            key = value.strip() if isinstance(value, str) else json.dumps(value)
            seen[key] = seen.get(key, 0) + 1
    if first is None:
        return
    values = sorted(seen, key=lambda v: -seen[v])
    shown = ", ".join(f"{v!r} ({seen[v]} row{'s' * (seen[v] > 1)})" for v in values[:8])
    more = f" and {len(values) - 8} more" if len(values) > 8 else ""
    example = " ".join(f"{v}=LABEL" for v in values[:3])
    fix = "" if task.defined_in is None else f" {_fix(task, '')}"
    raise DataError(
        f"{path}, line {first[0]}, field {task.label_field!r}: {first[1]} The file's labels outside that set: "
        f"{shown}{more}. Map them onto the task's labels with --labels {example} (TASK:VALUE=LABEL when the run "
        f"has several tasks; labels={{...}} in Python).{fix}"
    )
