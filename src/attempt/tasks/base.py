"""The `Task` description and the task registry.

A `Task` says where a benchmark's data lives (Hugging Face dataset id and config), which split names it
uses, how a raw row becomes text in the paper's text-to-text form (``"rte sentence1: ... sentence2: ..."``
→ ``"entailment"``), what its labels are, and how it is scored. Task families register themselves from
`attempt.tasks.glue`, `.superglue`, `.mrqa` and `.others`.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from attempt.tasks import metrics as metric_registry

KINDS = ("classification", "multiple_choice", "regression", "extractive_qa")
SMALL_TASK_LIMIT = 10_000  # tasks with fewer official training examples use the "halve validation" protocol
UNKNOWN_LABEL = -1  # the label id a generated string gets when it matches no label word

Row = Mapping[str, Any]
Renderer = Callable[[Row], list[tuple[str, str]]]


@dataclass(frozen=True)
class Task:
    """One benchmark task.

    Attributes:
        name: registry name (``"rte"``, ``"superglue_rte"``, ``"newsqa"`` ...).
        hub_id: Hugging Face dataset id, e.g. ``"nyu-mll/glue"``.
        config: dataset config, e.g. ``"rte"``.
        kind: one of ``KINDS``.
        fields: the row fields the text is built from, in order (also the columns a user file must have).
        label_field: the row field holding the label / answers.
        label_words: verbalizer words, index = integer label id; None for regression and QA.
        raw_labels: for datasets whose label column holds strings (winogrande ``"1"``/``"2"``, scitail
            ``"entails"``/``"neutral"``): the raw value of each label id. None when labels are already ids.
        metrics: metric names from `attempt.tasks.metrics.METRICS`; the first is the headline.
        official_train_size: size of the official training set; decides the split protocol (not the size
            of whatever copy is loaded, so subsampled mirrors do not change the protocol).
        train_split / validation_split: official split names.
        test_split: when set, the official split used as the paper's test set (MNLI: validation_matched,
            with validation_mismatched as validation); None means the generic protocol.
        small: override of the small/large decision (``official_train_size < SMALL_TASK_LIMIT``) for tasks
            the paper treats differently from their size; None means decide from the size.
        prefix: the task word that starts the source text; defaults to `name`.
        subset: for MRQA, the value of the ``subset`` field to keep; an empty result is an error.
        label_range: regression: the lowest and highest valid score (STS-B: 0..5); a label outside is refused.
        list_fields: the `fields` that hold a list of strings (ReCoRD's ``entities``); the others hold text.
        renderer: builds the ``(key, value)`` pairs of the source text from a row; None means
            ``[(f, row[f]) for f in fields]``.
        template: a user task's ``str.format`` text over `fields` (``"review: {text}"``); when set it is the
            whole source text (and an encoder's one text), instead of ``"<prefix> key: value ..."``.
        data_files: a user task's own files, ``((split, path), ...)``; `attempt.data.sources.load_split` reads them
            instead of the mirror or the Hub.
        defined_in: where a user task was defined (its task file), so that data errors can name the fix.
    """

    name: str
    hub_id: str
    config: str | None
    kind: str
    fields: tuple[str, ...]
    official_train_size: int
    metrics: tuple[str, ...]
    label_field: str = "label"
    label_words: tuple[str, ...] | None = None
    raw_labels: tuple[Any, ...] | None = None
    train_split: str = "train"
    validation_split: str = "validation"
    test_split: str | None = None
    small: bool | None = None
    prefix: str | None = None
    subset: str | None = None
    label_range: tuple[float, float] | None = None
    list_fields: tuple[str, ...] = ()
    renderer: Renderer | None = field(default=None, compare=False, repr=False)
    template: str | None = None
    data_files: tuple[tuple[str, str], ...] = ()
    defined_in: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Task {self.name!r}: kind {self.kind!r} is not one of {', '.join(KINDS)}.")
        if self.is_classification and not self.label_words:
            raise ValueError(f"Task {self.name!r} is a {self.kind} task and needs label_words.")
        for name in self.metrics:
            metric_registry.get_metric(name)

    # ----------------------------------------------------------------------------------------- properties
    @property
    def is_classification(self) -> bool:
        """True when labels are integer ids into `label_words` (classification and multiple choice)."""
        return self.kind in ("classification", "multiple_choice")

    @property
    def is_small(self) -> bool:
        """True when the paper's protocol halves the official validation set into validation and test."""
        if self.small is not None:
            return self.small
        return self.official_train_size < SMALL_TASK_LIMIT

    @property
    def num_labels(self) -> int:
        """Number of classes, 1 for regression, 0 for QA."""
        if self.label_words:
            return len(self.label_words)
        return 1 if self.kind == "regression" else 0

    # ------------------------------------------------------------------------------------------- text
    def pairs(self, row: Row) -> list[tuple[str, str]]:
        """The ``(key, value)`` pairs the source text is made of.

        Args:
            row: a raw row with the Hub's field names.

        Returns:
            A list of ``(key, text)`` pairs in display order.

        Raises:
            KeyError: when the row lacks one of `fields`.
        """
        if self.renderer is not None:
            return self.renderer(row)
        return [(name, str(row[name])) for name in self.fields]

    def source_text(self, row: Row) -> str:
        """The model input: ``"<prefix> key1: value1 key2: value2 ..."``, or a user task's `template` filled in."""
        if self.template is not None:
            return self.template.format_map(dict(self.pairs(row)))
        body = " ".join(f"{key}: {value}" for key, value in self.pairs(row))
        return f"{self.prefix or self.name} {body}"

    def target_text(self, row: Row) -> str:
        """The model output: the label word, the score rounded to 0.2 (``"3.8"``), or the first answer.

        Raises:
            ValueError: when the label is not valid for this task.
        """
        label = self.label_of(row)
        if self.is_classification:
            return self.label_words[label]
        if self.kind == "regression":
            return f"{round(label * 5) / 5:.1f}"
        return label[0] if label else ""

    def format(self, row: Row) -> tuple[str, str]:
        """Turn a row into the text-to-text pair ``(source_text, target_text)``.

        Args:
            row: a raw row with the Hub's field names.

        Returns:
            ``(source_text, target_text)``.

        Raises:
            KeyError: a field is missing. ValueError: the label is not valid.
        """
        return self.source_text(row), self.target_text(row)

    def text_fields(self, row: Row) -> tuple[str, str | None]:
        """The one or two texts an encoder with a classification head reads.

        Two-field tasks give ``(a, b)``; single-field tasks ``(a, None)``; tasks with more fields give the
        first value and the rest as ``"key: value ..."`` text.

        Args:
            row: a raw row.

        Returns:
            ``(text_a, text_b_or_None)``.
        """
        if self.template is not None:  # the user's text is the input, as the seq2seq backbones read it
            return self.source_text(row), None
        pairs = self.pairs(row)
        if len(pairs) == 1:
            return pairs[0][1], None
        if len(pairs) == 2:
            return pairs[0][1], pairs[1][1]
        return pairs[0][1], " ".join(f"{key}: {value}" for key, value in pairs[1:])

    # ------------------------------------------------------------------------------------------ labels
    def label_of(self, row: Row) -> Any:
        """The row's label: an int id (classification), a float (regression) or a list of answers (QA).

        Args:
            row: a raw row.

        Returns:
            The label in the task's canonical form.

        Raises:
            KeyError: the label field is missing. ValueError: the label is outside the label set.
        """
        value = row[self.label_field]
        if self.kind == "extractive_qa":
            return _answers(value, self.name)
        if self.kind == "regression":
            return self._score(value)
        if self.raw_labels is not None:
            if value not in self.raw_labels:
                raise ValueError(
                    f"Task {self.name!r}: label {value!r} is outside the label set {list(self.raw_labels)}."
                )
            return self.raw_labels.index(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < len(self.label_words):
            # the Hub marks the rows of a test split without labels -1: say why such a split cannot be used
            unlabelled = " Test splits without labels (-1) cannot be used." if value == -1 else ""
            raise ValueError(
                f"Task {self.name!r}: label {value!r} is outside the label set 0..{len(self.label_words) - 1} "
                f"({', '.join(self.label_words)}).{unlabelled}"
            )
        return value

    def _score(self, value: Any) -> float:
        """A regression label as a float inside `label_range`."""
        try:
            score = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"Task {self.name!r}: label {value!r} is not a number.") from None
        if not math.isfinite(score):
            raise ValueError(f"Task {self.name!r}: label {value!r} is not a finite score.")
        if self.label_range is not None and not self.label_range[0] <= score <= self.label_range[1]:
            low, high = self.label_range
            raise ValueError(f"Task {self.name!r}: label {score} is outside the score range {low}..{high}.")
        return score

    def parse_prediction(self, prediction: Any) -> Any:
        """Map a model prediction back to the label space.

        Args:
            prediction: a label id, a generated string, or (regression) a number or numeric string.

        Returns:
            Classification: the label id, or ``UNKNOWN_LABEL`` (-1) when the string matches no label word
            (counted wrong by every metric). Regression: a float (-1.0 when unparsable). QA: the string.
        """
        if self.is_classification:
            if isinstance(prediction, str):
                words = [word.lower() for word in self.label_words]
                text = prediction.strip().lower()
                return words.index(text) if text in words else UNKNOWN_LABEL
            return int(prediction)
        if self.kind == "regression":
            try:
                return float(prediction)
            except (TypeError, ValueError):
                return -1.0
        return str(prediction)

    def group_of(self, row: Row) -> Any:
        """The question a MultiRC answer row belongs to (``(paragraph, question)`` from ``idx``), else None."""
        idx = row.get("idx")
        if isinstance(idx, Mapping) and "question" in idx:
            return (idx.get("paragraph"), idx["question"])
        return None

    # ----------------------------------------------------------------------------------------- metrics
    def compute_metrics(self, predictions: Sequence[Any], references: Sequence[Any]) -> dict[str, float]:
        """Score predictions with the task's metrics (×100) and their mean under ``"average"``.

        Args:
            predictions: label ids or generated strings (classification), numbers (regression), strings (QA).
            references: raw rows (preferred; needed for MultiRC's per-question exact match) or labels in
                the form `label_of` returns.

        Returns:
            ``{metric_name: value, ..., "average": mean}``.

        Raises:
            ValueError: on a length mismatch, or when a grouped metric gets no rows.
        """
        if len(predictions) != len(references):
            raise ValueError(
                f"Task {self.name!r}: {len(predictions)} predictions but {len(references)} references."
            )
        rows_given = bool(references) and isinstance(references[0], Mapping)
        labels = [self.label_of(r) for r in references] if rows_given else list(references)
        groups = [self.group_of(r) for r in references] if rows_given else None
        parsed = [self.parse_prediction(p) for p in predictions]
        scores = {name: metric_registry.compute(name, parsed, labels, groups=groups) for name in self.metrics}
        scores["average"] = sum(scores.values()) / len(scores)
        return scores


def _answers(value: Any, task_name: str) -> list[str]:
    """Normalise SQuAD-style ``{"text": [...]}``, MRQA/ReCoRD lists, or a bare string to a list of answers."""
    if isinstance(value, Mapping):
        if "text" not in value:  # an empty list here would train on "" silently
            raise ValueError(
                f"Task {task_name!r}: answers {value!r} has no 'text' list (SQuAD form: "
                '{"text": ["..."], "answer_start": [...]}).'
            )
        value = value["text"]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"Task {task_name!r}: answers {value!r} are not a list of strings.")
    return list(value)


# ------------------------------------------------------------------------------------------- registry
class UnknownTaskError(KeyError):
    """An unknown task name; the message lists the known tasks. (A KeyError, printed without quotes.)"""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


_REGISTRY: dict[str, Task] = {}
_ALIASES = {"wsc.fixed": "wsc", "superglue-rte": "superglue_rte", "nq": "natural_questions", "sst-2": "sst2"}


def register_task(task: Task, replace: bool = False) -> Task:
    """Add a task to the registry.

    Args:
        task: the task; its name must be new, unless `replace`.
        replace: put `task` in place of a registered task of the same name (a user task re-registered from a
            run folder, its data files now somewhere else).

    Returns:
        The same task (so module-level definitions can be written ``RTE = register_task(Task(...))``).

    Raises:
        ValueError: when a task of that name is already registered.
    """
    if task.name in _REGISTRY and not replace:
        raise ValueError(f"A task named {task.name!r} is already registered.")
    _REGISTRY[task.name] = task
    return task


def registered_task(name: str) -> Task | None:
    """The task registered under exactly `name`, None when there is none (no aliases, no suggestions)."""
    return _REGISTRY.get(name)


def list_tasks() -> list[str]:
    """Names of all registered tasks, sorted."""
    return sorted(_REGISTRY)


def get_task(name: str | Task) -> Task:
    """Look a task up by name (case-insensitive; a few aliases such as ``"wsc.fixed"`` are accepted).

    Args:
        name: a task name, or a `Task` (returned unchanged).

    Returns:
        The registered `Task`.

    Raises:
        UnknownTaskError: (a KeyError) for an unknown name; the message lists the known tasks.
    """
    if isinstance(name, Task):
        return name
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key in _REGISTRY:
        return _REGISTRY[key]
    close = difflib.get_close_matches(key, list(_REGISTRY), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise UnknownTaskError(f"Unknown task {name!r}. Known tasks: {', '.join(list_tasks())}.{hint}")
