"""Task registry, text formats, and per-task metrics; loading every task from the local mirror."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from scipy import stats
from sklearn.metrics import f1_score, matthews_corrcoef

from attempt.data.sources import DataError, MissingSplitError, load_split, mirror_path
from attempt.tasks import UNKNOWN_LABEL, get_task, list_tasks

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("ATTEMPT_DATA_DIR") or REPO.parent / "shared" / "data")
needs_mirror = pytest.mark.skipif(
    not DATA_DIR.is_dir(), reason=f"benchmark mirror not found at {DATA_DIR} (set ATTEMPT_DATA_DIR)"
)

ALL_TASKS = [
    "mnli", "qqp", "qnli", "sst2", "stsb", "mrpc", "rte", "cola",
    "boolq", "cb", "multirc", "wic", "wsc", "copa", "record", "superglue_rte",
    "natural_questions", "hotpotqa", "searchqa", "newsqa", "squad",
    "winogrande", "yelp_polarity", "scitail", "paws",
]  # fmt: skip


def test_registry_has_the_paper_tasks():
    assert sorted(ALL_TASKS) == list_tasks()


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(KeyError, match=r"Unknown task 'rtee'\. Known tasks: boolq, cb, cola, copa"):
        get_task("rtee")


def test_aliases_and_configs():
    assert get_task("wsc.fixed").config == "wsc.fixed"
    assert get_task("RTE").name == "rte"
    assert get_task("squad").hub_id == "rajpurkar/squad" and get_task("squad").config == "plain_text"
    assert get_task("newsqa").subset == "NewsQA"
    assert get_task("natural_questions").subset == "NaturalQuestionsShort"
    assert get_task("scitail").config == "tsv_format"


def test_small_large_decision_uses_official_size():
    small = ["cola", "stsb", "mrpc", "rte", "boolq", "cb", "wic", "wsc", "multirc", "scitail", "copa"]
    assert all(get_task(name).is_small for name in small)
    assert not any(get_task(name).is_small for name in ["mnli", "qqp", "qnli", "sst2", "record", "squad"])


def test_formats_by_hand():
    row = {"sentence1": "A b.", "sentence2": "C d.", "label": 1, "idx": 0}
    assert get_task("rte").format(row) == ("rte sentence1: A b. sentence2: C d.", "not_entailment")
    assert get_task("rte").text_fields(row) == ("A b.", "C d.")
    stsb = get_task("stsb")
    assert stsb.format({**row, "label": 3.75}) == ("stsb sentence1: A b. sentence2: C d.", "3.8")
    assert stsb.target_text({**row, "label": 5.0}) == "5.0"
    winogrande = get_task("winogrande")
    row = {"sentence": "X _ y.", "option1": "a", "option2": "b", "answer": "2"}
    assert winogrande.format(row) == ("winogrande sentence: X _ y. option1: a option2: b", "option2")
    scitail = get_task("scitail")
    assert scitail.label_of({"premise": "p", "hypothesis": "h", "label": "entails"}) == 0
    with pytest.raises(ValueError, match="outside the label set"):
        get_task("rte").label_of({"sentence1": "a", "sentence2": "b", "label": 2})


# ---------------------------------------------------------------------------------------- the mirror
FIRST_EXAMPLES = {
    ("rte", "train"): (
        "rte sentence1: No Weapons of Mass Destruction Found in Iraq Yet. "
        "sentence2: Weapons of Mass Destruction Found in Iraq.",
        "not_entailment",
    ),
    ("mnli", "train"): (
        "mnli premise: Our hearts are particularly heavy this year as we look back at those we've lost, the "
        "Globe writes lovingly. hypothesis: We are especially sad this year because we lost a lot of people.",
        "entailment",
    ),
    ("sst2", "validation"): None,
    ("copa", "train"): (
        "copa premise: My body cast a shadow over the grass. question: cause choice1: The sun was rising. "
        "choice2: The grass was cut.",
        "choice1",
    ),
    ("wsc", "train"): (
        "wsc text: Mark told Pete many lies about himself, which Pete included in his book. He should have "
        "been more skeptical. span1_text: Mark span2_text: He",
        "false",
    ),
    ("stsb", "train"): (
        "stsb sentence1: A plane is taking off. sentence2: An air plane is taking off.",
        "5.0",
    ),
}


def _available_split(name: str) -> str:
    task = get_task(name)
    for split in (task.validation_split, task.train_split):
        if mirror_path(task, split, DATA_DIR).is_file():
            return split
    folder = mirror_path(task, "x", DATA_DIR).parent
    splits = sorted(p.stem for p in folder.glob("*.jsonl")) if folder.is_dir() else []
    if not splits:
        pytest.skip(f"the mirror at {DATA_DIR} has no split of {task.hub_id}/{task.config or 'default'}")
    return splits[0]


@pytest.mark.data
@needs_mirror
@pytest.mark.parametrize("name", ALL_TASKS)
def test_every_task_loads_and_formats_from_the_mirror(name):
    task = get_task(name)
    split = _available_split(name)
    try:
        rows = load_split(task, split, DATA_DIR)
    except DataError as error:
        assert task.subset is not None and task.subset in str(error)  # MRQA subset not in the sample
        pytest.skip(f"the mirror has no {task.subset} rows: {error}")
    for row in rows[:5]:
        source, target = task.format(row)
        assert source.startswith(f"{task.prefix or task.name} ") and target
        if task.is_classification:
            assert target in task.label_words
    if task.kind != "regression":  # predicting every gold target scores 100 on the headline metric
        gold = [task.target_text(row) for row in rows[:50]]
        assert task.compute_metrics(gold, rows[:50])[task.metrics[0]] == pytest.approx(100.0)


@pytest.mark.data
@needs_mirror
@pytest.mark.parametrize(("name", "split"), [key for key, value in FIRST_EXAMPLES.items() if value])
def test_first_examples_exact(name, split):
    rows = load_split(name, split, DATA_DIR)
    assert get_task(name).format(rows[0]) == FIRST_EXAMPLES[(name, split)]


@pytest.mark.data
@needs_mirror
def test_qa_first_examples_and_no_squad_fallback():
    squad = load_split("squad", "train", DATA_DIR)
    assert get_task("squad").format(squad[0]) == (
        "squad question: Who is the creator of American Idol? context: " + squad[0]["context"],
        "Simon Fuller",
    )
    newsqa = load_split("newsqa", "validation", DATA_DIR)
    assert len(newsqa) == 17 and {row["subset"] for row in newsqa} == {"NewsQA"}
    assert get_task("newsqa").target_text(newsqa[0]) == "three different videos"
    with pytest.raises(DataError, match="no rows of subset 'NaturalQuestionsShort'.*No other dataset"):
        load_split("natural_questions", "validation", DATA_DIR)
    with pytest.raises(MissingSplitError, match="train.jsonl"):
        load_split("hotpotqa", "train", DATA_DIR)


# ------------------------------------------------------------------------------------------ metrics
def _rows(task_name, labels):
    fields = get_task(task_name).fields
    return [{**dict.fromkeys(fields, "x"), "label": label, "idx": i} for i, label in enumerate(labels)]


def test_classification_metrics_on_label_ids():
    references = [1, 0, 1, 1, 0, 0]
    predictions = [1, 1, 1, 0, 0, 0]
    scores = get_task("mrpc").compute_metrics(predictions, _rows("mrpc", references))
    assert scores["accuracy"] == pytest.approx(100 * 4 / 6)
    assert scores["f1"] == pytest.approx(100 * f1_score(references, predictions))
    assert scores["average"] == pytest.approx((scores["accuracy"] + scores["f1"]) / 2)
    cola = get_task("cola").compute_metrics(predictions, references)
    assert cola["matthews_correlation"] == pytest.approx(100 * matthews_corrcoef(references, predictions))


def test_generated_strings_map_back_and_unknown_is_wrong():
    rte = get_task("rte")
    assert rte.parse_prediction(" Entailment ") == 0
    assert rte.parse_prediction("banana") == UNKNOWN_LABEL
    scores = rte.compute_metrics(["entailment", "banana", "not_entailment"], [0, 1, 1])
    assert scores == {"accuracy": pytest.approx(200 / 3), "average": pytest.approx(200 / 3)}


def test_cb_macro_f1_and_stsb_correlations():
    references, predictions = [0, 1, 2, 2, 0], [0, 1, 1, 2, 0]
    cb = get_task("cb").compute_metrics(predictions, references)
    assert cb["macro_f1"] == pytest.approx(100 * f1_score(references, predictions, average="macro"))
    assert cb["accuracy"] == pytest.approx(80.0)
    scores = get_task("stsb").compute_metrics(["1.0", "2.4", "3.0", "oops"], [1.2, 2.0, 3.4, 4.6])
    expected = [1.0, 2.4, 3.0, -1.0]  # an unparsable string scores as -1.0
    assert scores["pearson"] == pytest.approx(100 * stats.pearsonr(expected, [1.2, 2.0, 3.4, 4.6])[0])
    assert scores["spearman"] == pytest.approx(100 * stats.spearmanr(expected, [1.2, 2.0, 3.4, 4.6])[0])


def test_multirc_metrics_group_by_question():
    rows = [
        {
            "paragraph": "p",
            "question": "q",
            "answer": "a",
            "label": label,
            "idx": {"paragraph": 0, "question": q},
        }
        for label, q in [(1, 0), (0, 0), (1, 1), (0, 1)]
    ]
    scores = get_task("multirc").compute_metrics(["true", "false", "true", "true"], rows)
    assert scores["multirc_exact_match"] == 50.0
    assert scores["f1a"] == pytest.approx(100 * f1_score([1, 0, 1, 0], [1, 0, 1, 1]))


def test_qa_metrics_with_rows():
    rows = [
        {
            "question": "q",
            "context": "c",
            "answers": {"text": ["Simon Fuller", "Fuller"], "answer_start": [0, 6]},
        }
    ]
    scores = get_task("squad").compute_metrics(["fuller."], rows)
    assert scores == {"squad_f1": 100.0, "squad_exact_match": 100.0, "average": 100.0}
