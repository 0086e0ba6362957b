"""GLUE tasks (``nyu-mll/glue``): mnli, qqp, qnli, sst2, stsb, mrpc, rte, cola.

Source texts follow T5's GLUE format, e.g. ``"rte sentence1: <s1> sentence2: <s2>"``; targets are the label
words below (STS-B: the score rounded to 0.2, ``"3.8"``).
"""

from __future__ import annotations

from attempt.tasks.base import Task, register_task

GLUE = "nyu-mll/glue"

MNLI = register_task(
    Task(
        name="mnli",
        hub_id=GLUE,
        config="mnli",
        kind="classification",
        fields=("premise", "hypothesis"),
        label_words=("entailment", "neutral", "contradiction"),
        metrics=("accuracy",),
        official_train_size=392_702,
        validation_split="validation_mismatched",
        test_split="validation_matched",
    )
)
QQP = register_task(
    Task(
        name="qqp",
        hub_id=GLUE,
        config="qqp",
        kind="classification",
        fields=("question1", "question2"),
        label_words=("not_duplicate", "duplicate"),
        metrics=("f1", "accuracy"),
        official_train_size=363_846,
    )
)
QNLI = register_task(
    Task(
        name="qnli",
        hub_id=GLUE,
        config="qnli",
        kind="classification",
        fields=("question", "sentence"),
        label_words=("entailment", "not_entailment"),
        metrics=("accuracy",),
        official_train_size=104_743,
    )
)
SST2 = register_task(
    Task(
        name="sst2",
        hub_id=GLUE,
        config="sst2",
        kind="classification",
        fields=("sentence",),
        label_words=("negative", "positive"),
        metrics=("accuracy",),
        official_train_size=67_349,
    )
)
STSB = register_task(
    Task(
        name="stsb",
        hub_id=GLUE,
        config="stsb",
        kind="regression",
        fields=("sentence1", "sentence2"),
        metrics=("pearson", "spearman"),
        official_train_size=5_749,
        label_range=(0.0, 5.0),
    )
)
MRPC = register_task(
    Task(
        name="mrpc",
        hub_id=GLUE,
        config="mrpc",
        kind="classification",
        fields=("sentence1", "sentence2"),
        label_words=("not_equivalent", "equivalent"),
        metrics=("f1", "accuracy"),
        official_train_size=3_668,
    )
)
RTE = register_task(
    Task(
        name="rte",
        hub_id=GLUE,
        config="rte",
        kind="classification",
        fields=("sentence1", "sentence2"),
        label_words=("entailment", "not_entailment"),
        metrics=("accuracy",),
        official_train_size=2_490,
    )
)
COLA = register_task(
    Task(
        name="cola",
        hub_id=GLUE,
        config="cola",
        kind="classification",
        fields=("sentence",),
        label_words=("unacceptable", "acceptable"),
        metrics=("matthews_correlation",),
        official_train_size=8_551,
    )
)
