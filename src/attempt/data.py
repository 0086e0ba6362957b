"""Loading benchmark data: official splits from a local mirror or the Hub, and your own files.

One loading path, `load_split(task, split, data_dir=None)`:

- a local mirror ``<data_dir>/<hub_id>/<config>/<split>.jsonl`` (one JSON object per line, the Hub's field
  names; ``config`` is ``"default"`` for datasets without one) when `data_dir` is given or the environment
  variable ``ATTEMPT_DATA_DIR`` is set;
- otherwise the Hugging Face Hub through ``datasets.load_dataset`` (``pip install attempt-tuning[data]``).

`load_user_file` reads your own CSV / TSV / JSONL file with a column mapping. Every row is validated
(fields present, label inside the label set) and errors name the file, row and field. The paper's splits of
these rows are `attempt.splits`; collating rows into batches is `attempt.collate`.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from attempt.tasks import Task, get_task

DATA_DIR_ENV = "ATTEMPT_DATA_DIR"


class DataError(ValueError):
    """Bad data: a missing field, a label outside the label set, an empty split."""


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
    """Read one JSON object per line (blank lines skipped).

    Raises:
        DataError: a line that is not a JSON object (the message names file and line).
    """
    rows = []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{path}, line {line_number}: not valid JSON ({error}).") from error
            if not isinstance(row, dict):
                raise DataError(f"{path}, line {line_number}: expected a JSON object, got {type(row).__name__}.")
            rows.append(row)
    return rows


def _read_mirror(task: Task, split: str, data_dir: Path) -> list[dict[str, Any]]:
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
    return read_jsonl(path)


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


def validate_rows(rows: Sequence[Mapping[str, Any]], task: Task, source: str) -> None:
    """Check that a split is non-empty and every row has the task's fields and a valid label.

    Args:
        rows: the rows.
        task: the task they belong to.
        source: how to name their origin in errors (a file path, or "hub_id/config split").

    Raises:
        DataError: naming the source, the row (0-based) and the field.
    """
    if not rows:
        raise DataError(f"Task {task.name!r}: {source} has no rows (empty split).")
    required = (*task.fields, task.label_field)
    for row_number, row in enumerate(rows):
        missing = [name for name in required if name not in row]
        if missing:
            raise DataError(
                f"{source}, row {row_number}: field(s) {', '.join(map(repr, missing))} missing for task "
                f"{task.name!r} (row has: {', '.join(row)}). Map your columns with columns={{...}}."
            )
        try:
            task.label_of(row)
        except (ValueError, TypeError) as error:
            raise DataError(f"{source}, row {row_number}, field {task.label_field!r}: {error}") from error


def load_split(
    task: Task | str, split: str, data_dir: str | os.PathLike | None = None
) -> list[dict[str, Any]]:
    """Load one official split of a task as a list of raw rows (the Hub's field names).

    Args:
        task: a `Task` or its name.
        split: the split name (``"train"``, ``"validation"``, ``"validation_matched"``, ...).
        data_dir: a local mirror; None means ``$ATTEMPT_DATA_DIR`` if set, else the Hugging Face Hub.

    Returns:
        The rows, in file order. MRQA tasks keep only the rows of their ``subset``.

    Raises:
        MissingSplitError: the mirror lacks the file (the message names the path and the splits present).
        ImportError: the Hub is needed but ``datasets`` is not installed.
        DataError: an empty split (or no row of the MRQA subset), a missing field, an invalid label.
    """
    task = get_task(task)
    folder = resolve_data_dir(data_dir)
    if folder is not None:
        rows = _read_mirror(task, split, folder)
        source = str(mirror_path(task, split, folder))
    else:
        rows = _read_hub(task, split)
        source = f"{task.hub_id}/{task.config} split {split!r}"
    if task.subset is not None:
        if rows and "subset" not in rows[0]:
            raise DataError(f"{source}: rows have no 'subset' field to select {task.subset!r} by.")
        present = sorted({str(row.get("subset")) for row in rows})
        rows = [row for row in rows if row.get("subset") == task.subset]
        if not rows:
            raise DataError(
                f"Task {task.name!r}: {source} has no rows of subset {task.subset!r} "
                f"(subsets present: {', '.join(present) or 'none'}). No other dataset is substituted."
            )
    validate_rows(rows, task, source)
    return rows


def _read_table(path: Path, delimiter: str) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        return [dict(row) for row in reader]


def _coerce_label(value: Any, task: Task) -> Any:
    """Turn a text cell into the task's label form (id, raw label, float, or list of answers)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if task.kind == "regression":
        return float(text) if text else value
    if task.kind == "extractive_qa":
        return json.loads(text) if text[:1] in "[{" else text
    if task.raw_labels is not None:
        return text
    words = [word.lower() for word in task.label_words]
    if text.lower() in words:
        return words.index(text.lower())
    return int(text) if text.lstrip("-").isdigit() else value


def load_user_file(
    path: str | os.PathLike, task: Task | str, columns: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """Read your own CSV (``.csv``), TSV (``.tsv``/``.txt``) or JSON-lines (``.jsonl``/``.json``) file.

    Args:
        path: the file; CSV/TSV need a header row.
        task: the task the rows are for.
        columns: ``{your_column: task_field}`` renames, e.g. ``{"premise": "sentence1"}`` to use a file with
            a ``premise`` column for RTE. Labels may be ids (``"1"``), label words (``"entailment"``) or,
            for QA, an answer string or a JSON list of answers.

    Returns:
        The rows with the task's field names, validated.

    Raises:
        DataError: a mapped column that is not in the file, a missing field, an invalid label, no rows.
        FileNotFoundError: the file does not exist.
    """
    task = get_task(task)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such data file: {path}.")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json"):
        rows = read_jsonl(path)
    else:
        rows = _read_table(path, "," if suffix == ".csv" else "\t")
    columns = dict(columns or {})
    if rows:
        unknown = [name for name in columns if name not in rows[0]]
        if unknown:
            raise DataError(
                f"{path}: column(s) {', '.join(map(repr, unknown))} given in columns= are not in the file "
                f"(columns: {', '.join(rows[0])}). The mapping is {{file_column: task_field}}."
            )
    renamed = []
    for row in rows:
        row = {columns.get(name, name): value for name, value in row.items()}
        if task.label_field in row:
            row[task.label_field] = _coerce_label(row[task.label_field], task)
        renamed.append(row)
    validate_rows(renamed, task, str(path))
    return renamed
