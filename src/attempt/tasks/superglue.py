"""SuperGLUE tasks (``aps/super_glue``): boolq, cb, copa, multirc, record, superglue_rte, wic, wsc.

``wsc`` uses the ``wsc.fixed`` config (HF's span-text fixes), as ATTEMPT does. Binary tasks use the label
words ``("false", "true")`` (HF label 0 = False); CB: ``("entailment", "contradiction", "neutral")``; COPA:
``("choice1", "choice2")``. ReCoRD is scored like SQuAD (max over the gold entities); its source text is
``"record query: <query> entities: <e1>, <e2>, ... passage: <passage>"`` with ``@highlight`` lines joined
into sentences. MultiRC has one row per answer option; exact match is computed per question.
"""

from __future__ import annotations

from attempt.tasks.base import Row, Task, register_task

SUPER_GLUE = "aps/super_glue"
BINARY_WORDS = ("false", "true")


def _record_pairs(row: Row) -> list[tuple[str, str]]:
    passage = str(row["passage"]).replace("\n@highlight\n", ". ")
    return [("query", str(row["query"])), ("entities", ", ".join(row["entities"])), ("passage", passage)]


BOOLQ = register_task(
    Task(
        name="boolq",
        hub_id=SUPER_GLUE,
        config="boolq",
        kind="classification",
        fields=("question", "passage"),
        label_words=BINARY_WORDS,
        metrics=("accuracy",),
        official_train_size=9_427,
    )
)
CB = register_task(
    Task(
        name="cb",
        hub_id=SUPER_GLUE,
        config="cb",
        kind="classification",
        fields=("premise", "hypothesis"),
        label_words=("entailment", "contradiction", "neutral"),
        metrics=("macro_f1", "accuracy"),
        official_train_size=250,
    )
)
COPA = register_task(
    Task(
        name="copa",
        hub_id=SUPER_GLUE,
        config="copa",
        kind="multiple_choice",
        fields=("premise", "question", "choice1", "choice2"),
        label_words=("choice1", "choice2"),
        metrics=("accuracy",),
        official_train_size=400,
    )
)
MULTIRC = register_task(
    Task(
        name="multirc",
        hub_id=SUPER_GLUE,
        config="multirc",
        kind="classification",
        fields=("question", "answer", "paragraph"),
        label_words=BINARY_WORDS,
        metrics=("f1a", "multirc_exact_match"),
        # 27,243 answer rows but only ~5K questions; the paper's protocol treats MultiRC as small.
        official_train_size=27_243,
        small=True,
    )
)
RECORD = register_task(
    Task(
        name="record",
        hub_id=SUPER_GLUE,
        config="record",
        kind="extractive_qa",
        fields=("passage", "query", "entities"),
        list_fields=("entities",),
        label_field="answers",
        metrics=("squad_f1", "squad_exact_match"),
        official_train_size=100_730,
        renderer=_record_pairs,
    )
)
SUPERGLUE_RTE = register_task(
    Task(
        name="superglue_rte",
        hub_id=SUPER_GLUE,
        config="rte",
        kind="classification",
        fields=("premise", "hypothesis"),
        label_words=("entailment", "not_entailment"),
        metrics=("accuracy",),
        official_train_size=2_490,
        prefix="rte",
    )
)
WIC = register_task(
    Task(
        name="wic",
        hub_id=SUPER_GLUE,
        config="wic",
        kind="classification",
        fields=("word", "sentence1", "sentence2"),
        label_words=BINARY_WORDS,
        metrics=("accuracy",),
        official_train_size=5_428,
    )
)
WSC = register_task(
    Task(
        name="wsc",
        hub_id=SUPER_GLUE,
        config="wsc.fixed",
        kind="classification",
        fields=("text", "span1_text", "span2_text"),
        label_words=BINARY_WORDS,
        metrics=("accuracy",),
        official_train_size=554,
    )
)
