"""Collating examples into model batches for the three backbone families.

`make_examples` wraps a task's rows as examples (``{"task": name, "row": row, "index": i}``); `Collator`
tokenises and pads them into a `Batch` (a dict of tensors for ``model(**batch)`` that also carries its
examples); see its docstring for the exact batch contract per family. Loading the rows is `attempt.data.sources`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from attempt.tasks import Task, get_task

FAMILIES = ("seq2seq", "causal", "encoder")
IGNORE_INDEX = -100  # label value ignored by the loss


def make_examples(
    task: Task | str, rows: Sequence[Mapping[str, Any]], start: int = 0
) -> list[dict[str, Any]]:
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

    def label_candidates(self, task: Task | str) -> list[list[int]]:
        """The token ids of each label word of a classification task, as the model is trained to produce
        them after the input (seq2seq: the labels; causal: " " + word + eos), in label-id order."""
        task = get_task(task)
        if not task.is_classification or self.family == "encoder":
            raise ValueError(
                f"label_candidates needs a classification task on an LM backbone, not {task.name!r}/{self.family}."
            )
        if self.family == "seq2seq":
            return [self._ids(word, self.max_target_length) for word in task.label_words]
        eos = self.tokenizer.eos_token_id
        return [
            self._ids(" " + word, self.max_target_length - 1, special=False) + [eos]
            for word in task.label_words
        ]

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
