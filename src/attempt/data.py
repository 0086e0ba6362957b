"""Loading benchmark data and collating it into model batches.

One loading path, `load_split(task, split, data_dir=None)`:

- a local mirror ``<data_dir>/<hub_id>/<config>/<split>.jsonl`` (one JSON object per line, the Hub's field
  names; ``config`` is ``"default"`` for datasets without one) when `data_dir` is given or the environment
  variable ``ATTEMPT_DATA_DIR`` is set;
- otherwise the Hugging Face Hub through ``datasets.load_dataset`` (``pip install attempt-tuning[data]``).

`load_user_file` reads your own CSV / TSV / JSONL file with a column mapping. Every row is validated
(fields present, label inside the label set) and errors name the file, row and field.

`Collator` turns examples (``{"task": name, "row": row, "index": i}``, see `make_examples`) into tensors for
the three backbone families; see its docstring for the exact batch contract.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from attempt.tasks import Task, get_task

DATA_DIR_ENV = "ATTEMPT_DATA_DIR"
FAMILIES = ("seq2seq", "causal", "encoder")
IGNORE_INDEX = -100  # label value ignored by the loss


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


# ------------------------------------------------------------------------------------------- collating
def make_examples(task: Task | str, rows: Sequence[Mapping[str, Any]], start: int = 0) -> list[dict[str, Any]]:
    """Wrap rows as collator examples ``{"task": name, "row": row, "index": start + i}``.

    Args:
        task: the task of every row.
        rows: raw rows.
        start: the index of the first row (the ``index`` comes back as ``batch.example_ids``, so
            predictions can be written back to ``rows[index - start]``).

    Returns:
        A list of examples, usable directly as a map-style dataset for a ``DataLoader``.
    """
    name = get_task(task).name
    return [{"task": name, "row": row, "index": start + i} for i, row in enumerate(rows)]


class Batch(dict):
    """A collated batch: a dict of tensors (pass it as ``model(**batch)``) that also carries its examples.

    Attributes:
        examples: the examples it was built from, in batch order (to write predictions back).
        example_ids: each example's ``index`` (-1 when it had none), in batch order.
    """

    def __init__(self, tensors: dict[str, torch.Tensor], examples: Sequence[Any], example_ids: list[int]):
        super().__init__(tensors)
        self.examples = list(examples)
        self.example_ids = example_ids


def _pad(sequences: Sequence[Sequence[int]], length: int, value: int, left: bool = False) -> torch.Tensor:
    """Pad (or refuse to cut) lists of ids to one (B, length) long tensor."""
    batch = torch.full((len(sequences), length), value, dtype=torch.long)  # (B, length)
    for row_number, ids in enumerate(sequences):
        if len(ids) > length:
            raise ValueError(f"Sequence of {len(ids)} tokens does not fit pad_to={length}.")
        if not ids:
            continue
        if left:
            batch[row_number, length - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        else:
            batch[row_number, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return batch


class Collator:
    """Tokenise examples and pad them into a batch for one backbone family.

    Every batch is a `Batch`: a dict holding ``input_ids`` (B, L) long, ``attention_mask`` (B, L) long
    (1 = real token) and ``task_ids`` (B,) long (position of the example's task in `task_names`), plus the
    attributes ``batch.examples`` and ``batch.example_ids`` (the examples' ``index``) that are not dict
    keys, so ``model(**batch)`` works. Per family:

    - ``"seq2seq"`` (T5, BART): input = tokenizer(source) with its special tokens, right padding;
      ``labels`` (B, T) = tokenizer(target) ids, padding replaced by -100 (omitted for generation).
    - ``"causal"`` (GPT-2, Llama, SmolLM2): training: ids(source) + ids(" " + target, no special tokens)
      + [eos], right padding, ``labels`` = the same ids with -100 over the source and the padding.
      Generation (``for_generation=True``): source ids only, LEFT padding, no labels.
    - ``"encoder"`` (BERT, RoBERTa with a head): tokenizer(text_a, text_b) pair encoding (plus
      ``token_type_ids`` when the tokenizer returns them); ``labels`` (B,) long ids, float for regression
      (always included: `for_generation` does not apply to encoders).

    Padding is dynamic (to the longest in the batch) unless `pad_to` fixes L. A tokenizer without a pad
    token pads with eos. Tokenised texts are cached in memory in this Collator (an unbounded dict keyed by
    the text(s), the truncation length and the special-tokens flag; the tokenizer is fixed per Collator, so
    the key is in effect task text × tokenizer × max_length); pass ``cache=False`` to turn that off.

    Args:
        tokenizer: a Hugging Face tokenizer (callable, with ``pad_token_id`` / ``eos_token_id``).
        family: one of ``FAMILIES``.
        task_names: the model's ordered task list.
        max_source_length: truncation length of the source (of the pair encoding for encoders).
        max_target_length: truncation length of the target (eos included for causal).
        pad_to: fixed length L (the original protocol pads to 256), or None for dynamic padding.
        cache: keep tokenised texts in memory.

    Raises:
        ValueError: unknown family, no pad/eos token, or a `pad_to` shorter than the longest possible input.
    """

    def __init__(
        self,
        tokenizer: Any,
        family: str,
        task_names: Sequence[str],
        max_source_length: int = 256,
        max_target_length: int = 128,
        pad_to: int | None = None,
        cache: bool = True,
    ) -> None:
        if family not in FAMILIES:
            raise ValueError(f"Unknown family {family!r}. Choose one of: {', '.join(FAMILIES)}.")
        self.tokenizer = tokenizer
        self.family = family
        self.task_names = [get_task(name).name for name in task_names]
        self.max_source_length = max_source_length
        self.max_target_length = max_target_length
        self.pad_to = pad_to
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if self.pad_id is None:
            raise ValueError("The tokenizer has neither a pad token nor an eos token to pad with.")
        if family == "causal" and tokenizer.eos_token_id is None:
            raise ValueError("Causal training needs an eos token after the target; the tokenizer has none.")
        longest = max_source_length + (max_target_length if family == "causal" else 0)
        if pad_to is not None and pad_to < longest:
            raise ValueError(
                f"pad_to={pad_to} is shorter than the longest {family} input ({longest} tokens): raise pad_to "
                f"or lower max_source_length/max_target_length."
            )
        self._cache: dict[tuple[Any, ...], Any] | None = {} if cache else None

    def _ids(self, text: str, max_length: int, special: bool = True, pair: str | None = None) -> list[int]:
        key = (text, pair, max_length, special)
        if self._cache is not None and key in self._cache:
            return self._cache[key]
        encoded = self.tokenizer(
            text, pair, truncation=True, max_length=max_length, add_special_tokens=special
        )
        ids = list(encoded["input_ids"])
        if self._cache is not None:
            self._cache[key] = ids
        return ids

    def _unpack(self, example: Any) -> tuple[Task, Mapping[str, Any], int]:
        if isinstance(example, Mapping):
            task, row, index = example["task"], example["row"], example.get("index", -1)
        else:
            task, row = example
            index = -1
        task = get_task(task)
        if task.name not in self.task_names:
            raise ValueError(f"Task {task.name!r} is not in the collator's task list {self.task_names}.")
        return task, row, index

    def source_length(self, example: Any) -> int:
        """Number of source tokens of an example (for length-grouped batching)."""
        task, row, _ = self._unpack(example)
        if self.family == "encoder":
            text_a, text_b = task.text_fields(row)
            return len(self._pair_encoding(text_a, text_b)["input_ids"])
        return len(self._ids(task.source_text(row), self.max_source_length))

    def _pair_encoding(self, text_a: str, text_b: str | None) -> Mapping[str, list[int]]:
        key = ("pair", text_a, text_b, self.max_source_length)
        if self._cache is not None and key in self._cache:
            return self._cache[key]
        encoded = self.tokenizer(text_a, text_b, truncation=True, max_length=self.max_source_length)
        encoded = {name: list(values) for name, values in encoded.items()}
        if self._cache is not None:
            self._cache[key] = encoded
        return encoded

    def __call__(self, examples: Sequence[Any], for_generation: bool = False) -> Batch:
        """Collate examples into a batch.

        Args:
            examples: ``{"task", "row", "index"}`` dicts (see `make_examples`) or ``(task, row)`` pairs.
            for_generation: build a generation batch (no labels; left padding for causal models).

        Returns:
            A `Batch` (dict of tensors + ``examples`` / ``example_ids`` attributes), see the class docstring.

        Raises:
            ValueError: a task outside `task_names`, a QA task with the encoder family, an invalid label.
        """
        if not examples:
            raise ValueError("Cannot collate an empty list of examples.")
        unpacked = [self._unpack(example) for example in examples]
        if self.family == "encoder":
            tensors = self._encoder_batch(unpacked)
        elif self.family == "seq2seq":
            tensors = self._seq2seq_batch(unpacked, for_generation)
        else:
            tensors = self._causal_batch(unpacked, for_generation)
        task_ids = [self.task_names.index(task.name) for task, _, _ in unpacked]
        tensors["task_ids"] = torch.tensor(task_ids, dtype=torch.long)  # (B,)
        return Batch(tensors, examples, [index for _, _, index in unpacked])

    def _length(self, sequences: Sequence[Sequence[int]]) -> int:
        return self.pad_to if self.pad_to is not None else max(len(ids) for ids in sequences)

    def _mask(self, sequences: Sequence[Sequence[int]], length: int, left: bool = False) -> torch.Tensor:
        return _pad([[1] * len(ids) for ids in sequences], length, 0, left=left)  # (B, L)

    def _seq2seq_batch(self, unpacked: list, for_generation: bool) -> dict[str, torch.Tensor]:
        sources = [self._ids(task.source_text(row), self.max_source_length) for task, row, _ in unpacked]
        length = self._length(sources)
        batch = {
            "input_ids": _pad(sources, length, self.pad_id),  # (B, L)
            "attention_mask": self._mask(sources, length),  # (B, L)
        }
        if not for_generation:
            targets = [self._ids(task.target_text(row), self.max_target_length) for task, row, _ in unpacked]
            batch["labels"] = _pad(targets, max(len(ids) for ids in targets), IGNORE_INDEX)  # (B, T)
        return batch

    def _causal_batch(self, unpacked: list, for_generation: bool) -> dict[str, torch.Tensor]:
        sources = [self._ids(task.source_text(row), self.max_source_length) for task, row, _ in unpacked]
        if for_generation:
            length = self._length(sources)
            return {
                "input_ids": _pad(sources, length, self.pad_id, left=True),  # (B, L)
                "attention_mask": self._mask(sources, length, left=True),  # (B, L)
            }
        eos = self.tokenizer.eos_token_id
        sequences, labels = [], []
        for (task, row, _), source in zip(unpacked, sources, strict=True):
            target = self._ids(" " + task.target_text(row), self.max_target_length - 1, special=False) + [eos]
            sequences.append(source + target)
            labels.append([IGNORE_INDEX] * len(source) + target)
        length = self._length(sequences)
        return {
            "input_ids": _pad(sequences, length, self.pad_id),  # (B, L)
            "attention_mask": self._mask(sequences, length),  # (B, L)
            "labels": _pad(labels, length, IGNORE_INDEX),  # (B, L)
        }

    def _encoder_batch(self, unpacked: list) -> dict[str, torch.Tensor]:
        encodings = []
        for task, row, _ in unpacked:
            if task.kind == "extractive_qa":
                raise ValueError(f"Task {task.name!r} is extractive QA; the encoder family only classifies.")
            encodings.append(self._pair_encoding(*task.text_fields(row)))
        ids = [list(encoding["input_ids"]) for encoding in encodings]
        length = self._length(ids)
        batch = {"input_ids": _pad(ids, length, self.pad_id), "attention_mask": self._mask(ids, length)}
        if "token_type_ids" in encodings[0]:
            types = [list(encoding["token_type_ids"]) for encoding in encodings]
            batch["token_type_ids"] = _pad(types, length, 0)  # (B, L)
        # one regression example makes the batch float (class ids stay exact); the model casts per task
        regression = any(task.kind == "regression" for task, _, _ in unpacked)
        values = [task.label_of(row) for task, row, _ in unpacked]
        batch["labels"] = torch.tensor(values, dtype=torch.float if regression else torch.long)  # (B,)
        return batch
