"""One batch of inputs through a model: the ONE inference path of `evaluate`, `predict` and `attempt serve`.

How an input is answered depends on the backbone family and the task kind (`path_of`):

- ``"head"``: encoder backbones (BERT, MiniLM, ...): the task head's logits; the argmax (classification) or the
  value (regression);
- ``"rank"``: LM backbones, classification with ``method="rank"``: every label word is scored with
  ``model.score_candidates`` (the input read once) and the most likely wins;
- ``"generate"``: LM backbones otherwise (regression, extractive QA, or ``method="generate"``): greedy decoding.

`infer_batch` answers one batch of inputs on one path, of one task (`evaluate` and `predict` batch per task) or
of several (`attempt serve` mixes them: each row reads its own task's prompt through ``task_ids``, its own
head's columns, its own label words). What it returns per input, an `Inference`, is then written out by the
caller: a prediction record (`attempt.evaluation.evaluate`) or a JSON answer (`attempt.serve.predict`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from attempt.data.collate import Collator
from attempt.modeling.protocols import Predictor
from attempt.tasks import Task, get_task

METHODS = ("rank", "generate")


@dataclasses.dataclass
class Inference:
    """What the model says about one input.

    Attributes:
        path: how it was answered: "head", "rank" or "generate" (`path_of`).
        value: the prediction: a label id (head or rank classification), a float (head regression) or the
            generated text, stripped.
        scores: per-label scores in label-id order, for classification by head (log-softmax of its logits) or
            by rank (each label word's log-likelihood); None otherwise.
        attention: the mixture's weights ``{source_name: w, ..., "target": w}`` when they were asked for and
            the model has attention; else None.
    """

    path: str
    value: Any
    scores: list[float] | None = None
    attention: dict[str, float] | None = None


def path_of(model: Predictor, task: Task, method: str) -> str:
    """How `model` answers inputs of `task`: "head", "rank" or "generate" (see the module docstring).

    Raises:
        ValueError: an unknown `method`, or an extractive QA task on an encoder backbone.
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not valid. Choose one of: {', '.join(METHODS)}.")
    if model.family == "encoder":
        if task.kind == "extractive_qa":
            raise ValueError(
                f"Task {task.name!r} is extractive QA; an encoder backbone with a head cannot answer it."
            )
        return "head"
    return "rank" if method == "rank" and task.is_classification else "generate"


def attention_names(model: Predictor) -> list[str] | None:
    """Names of the columns of the model's attention weights ([sources..., "target"]), None without."""
    mixture = getattr(model, "mixture", None)
    if mixture is None or not getattr(mixture, "uses_attention", False):
        return None
    names = list(mixture.source_names)
    if mixture.config.target_in_attention:
        names.append("target")
    return names


def filled_label(task: Task, row: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `row` with a placeholder label when it has none: the encoder collator builds a labels
    tensor for every row, and unlabelled inputs (`predict`, a served request) have none. It is never read."""
    row = dict(row)
    if row.get(task.label_field) is None:
        if task.is_classification:
            row[task.label_field] = task.raw_labels[0] if task.raw_labels is not None else 0
        elif task.kind == "regression":
            row[task.label_field] = 0.0
        else:
            row[task.label_field] = [""]
    return row


def infer_batch(
    model: Predictor,
    collator: Collator,
    examples: Sequence[Mapping[str, Any]],
    *,
    method: str = "rank",
    max_new_tokens: int = 16,
    attention: bool = True,
) -> list[Inference]:
    """Answer one batch of inputs that share one path (`path_of`), under the caller's no-grad/eval mode.

    Args:
        model: an AttemptModel or a baseline with the same interface (`attempt.modeling.protocols.Predictor`).
        collator: the model's Collator (its tokenizer decodes generated text).
        examples: ``{"task": name or Task, "row": row, ...}`` dicts (`attempt.data.collate.make_examples`), of
            one task or several; labels are optional.
        method: "rank" or "generate" for classification on LM backbones.
        max_new_tokens: the generation limit (a run's max_target_length).
        attention: also return each input's mixture weights (when the model has attention).

    Returns:
        One `Inference` per example, in their order.

    Raises:
        ValueError: examples on different paths (group them by `path_of` first).
    """
    tasks = [get_task(example["task"]) for example in examples]
    paths = {path_of(model, task, method) for task in tasks}
    if len(paths) != 1:
        raise ValueError(
            f"One batch takes one path; these inputs take {sorted(paths)}: group them by path_of."
        )
    path = paths.pop()
    filled = [
        {**example, "row": filled_label(task, example["row"])}
        for task, example in zip(tasks, examples, strict=True)
    ]
    device = next(model.parameters()).device
    batch = collator(filled, for_generation=path != "head")
    batch = {name: tensor.to(device) for name, tensor in batch.items() if name != "labels"}
    if path == "head":
        answers = _head(model, tasks, batch)
    elif path == "rank":
        answers = _rank(model, collator, tasks, batch)
    else:
        answers = _generated(model, collator.tokenizer, batch, max_new_tokens)
    if attention:
        _add_attention(model, batch, answers)
    return answers


def _head(model: Predictor, tasks: Sequence[Task], batch: dict[str, torch.Tensor]) -> list[Inference]:
    """Encoder backbones: each row's label id (argmax over its task's classes) and log-softmax scores, or
    its regression value."""
    logits = model(**batch).logits.float()  # (B, C), -inf beyond a task's classes
    answers = []
    for row, task in enumerate(tasks):
        if task.kind == "regression":
            answers.append(Inference("head", float(logits[row, 0])))
            continue
        own = logits[row, : task.num_labels]  # (C_task,)
        answers.append(Inference("head", int(own.argmax()), own.log_softmax(-1).tolist()))
    return answers


def _rank(
    model: Predictor, collator: Collator, tasks: Sequence[Task], batch: dict[str, torch.Tensor]
) -> list[Inference]:
    """Rank classification: the label id whose label word has the highest log-likelihood after the input.

    `batch` is a generation batch (inputs only, causal LEFT-padded): the model reads each input once and
    scores the union of the batch's label words from there (`score_candidates`); each row keeps its own
    task's columns (a candidate's log-likelihood does not depend on the other candidates).
    """
    union: list[list[int]] = []  # every distinct label-word token list of the batch's tasks
    columns: dict[str, list[int]] = {}
    for task in {task.name: task for task in tasks}.values():
        candidates = collator.label_candidates(task)  # C token-id lists, label-id order
        union.extend(ids for ids in candidates if ids not in union)
        columns[task.name] = [union.index(ids) for ids in candidates]
    scores = model.score_candidates(
        batch["input_ids"], batch["attention_mask"], batch["task_ids"], union
    ).float()  # (B, len(union))
    answers = []
    for row, task in enumerate(tasks):
        own = scores[row, columns[task.name]]  # (C,) in label-id order
        answers.append(Inference("rank", int(own.argmax()), own.tolist()))
    return answers


def _generated(
    model: Predictor, tokenizer: Any, batch: dict[str, torch.Tensor], max_new_tokens: int
) -> list[Inference]:
    """Greedy decoding, each row's text stripped."""
    kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": False, "num_beams": 1}
    if model.family == "causal" and tokenizer.eos_token_id is not None:
        kwargs["eos_token_id"] = tokenizer.eos_token_id
    ids = model.generate(batch["input_ids"], batch["attention_mask"], batch["task_ids"], **kwargs)
    return [
        Inference("generate", text.strip()) for text in tokenizer.batch_decode(ids, skip_special_tokens=True)
    ]


def _add_attention(model: Predictor, batch: dict[str, torch.Tensor], answers: list[Inference]) -> None:
    """Each answer's (t+1) mixture weights, for models with attention."""
    names = attention_names(model)
    if names is None:
        return
    _, _, weights = model.prompted_inputs(batch["input_ids"], batch["attention_mask"], batch["task_ids"])
    if weights is None:
        return
    for answer, row in zip(answers, weights.float().tolist(), strict=True):  # (B, t+1)
        answer.attention = dict(zip(names, row, strict=True))
