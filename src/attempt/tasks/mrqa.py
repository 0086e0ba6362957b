"""Extractive QA: SQuAD v1.1 (``rajpurkar/squad``, a source task) and four MRQA 2019 tasks.

The MRQA tasks read ``mrqa-workshop/mrqa`` and keep the rows whose ``subset`` field names the dataset
(``"NaturalQuestionsShort"``, ``"HotpotQA"``, ``"SearchQA"``, ``"NewsQA"``). They never fall back to SQuAD
or another subset: when no row matches, loading fails naming the subset expected.

Source text: ``"<task> question: <question> context: <context>"``; target: the first gold answer. Scored
with SQuAD exact match and F1 (max over all gold answers).
"""

from __future__ import annotations

from attempt.tasks.base import Task, register_task

QA_METRICS = ("squad_f1", "squad_exact_match")

SQUAD = register_task(
    Task(
        name="squad",
        hub_id="rajpurkar/squad",
        config="plain_text",
        kind="extractive_qa",
        fields=("question", "context"),
        label_field="answers",
        metrics=QA_METRICS,
        official_train_size=87_599,
    )
)


def _mrqa_task(name: str, subset: str, train_size: int) -> Task:
    return register_task(
        Task(
            name=name,
            hub_id="mrqa-workshop/mrqa",
            config="plain_text",
            kind="extractive_qa",
            fields=("question", "context"),
            label_field="answers",
            metrics=QA_METRICS,
            official_train_size=train_size,
            subset=subset,
        )
    )


NATURAL_QUESTIONS = _mrqa_task("natural_questions", "NaturalQuestionsShort", 104_071)
HOTPOTQA = _mrqa_task("hotpotqa", "HotpotQA", 72_928)
SEARCHQA = _mrqa_task("searchqa", "SearchQA", 117_384)
NEWSQA = _mrqa_task("newsqa", "NewsQA", 74_160)
