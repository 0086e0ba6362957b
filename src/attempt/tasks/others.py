"""Other tasks of the paper: winogrande, yelp_polarity, scitail, paws.

- ``winogrande``: ``allenai/winogrande`` config ``winogrande_xl``; the ``answer`` column holds ``"1"``/``"2"``
  (label ids 0/1, words ``("option1", "option2")``).
- ``yelp_polarity``: ``fancyzhx/yelp_polarity``; label 0 = negative (1-2 stars), 1 = positive.
- ``scitail``: ``allenai/scitail`` config ``tsv_format`` (fields premise / hypothesis, string label
  ``"entails"``/``"neutral"``). Chosen over ``snli_format`` because its columns are the plain sentences and
  its label needs no parse-tree columns; label words ``("entailment", "neutral")``.
- ``paws``: ``google-research-datasets/paws`` config ``labeled_final``; label 1 = paraphrase.
"""

from __future__ import annotations

from attempt.tasks.base import Task, register_task

WINOGRANDE = register_task(
    Task(
        name="winogrande",
        hub_id="allenai/winogrande",
        config="winogrande_xl",
        kind="multiple_choice",
        fields=("sentence", "option1", "option2"),
        label_field="answer",
        raw_labels=("1", "2"),
        label_words=("option1", "option2"),
        metrics=("accuracy",),
        official_train_size=40_398,
    )
)
YELP_POLARITY = register_task(
    Task(
        name="yelp_polarity",
        hub_id="fancyzhx/yelp_polarity",
        config=None,
        kind="classification",
        fields=("text",),
        label_words=("negative", "positive"),
        metrics=("accuracy",),
        official_train_size=560_000,
        # the Hub dataset has only train and test: its test split is the official evaluation set, which the
        # protocol of a large task uses as the test set (1,000 held-out training rows are the validation set)
        validation_split="test",
    )
)
SCITAIL = register_task(
    Task(
        name="scitail",
        hub_id="allenai/scitail",
        config="tsv_format",
        kind="classification",
        fields=("premise", "hypothesis"),
        raw_labels=("entails", "neutral"),
        label_words=("entailment", "neutral"),
        metrics=("accuracy",),
        # 23,596 training pairs, but the paper's protocol treats SciTail as a small dataset.
        official_train_size=23_596,
        small=True,
    )
)
PAWS = register_task(
    Task(
        name="paws",
        hub_id="google-research-datasets/paws",
        config="labeled_final",
        kind="classification",
        fields=("sentence1", "sentence2"),
        label_words=("not_duplicate", "duplicate"),
        metrics=("accuracy",),
        official_train_size=49_401,
    )
)
