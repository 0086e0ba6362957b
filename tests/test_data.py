"""Loading (mirror, Hub, user files), bad data, the paper's splits, few-shot, mixing, batching, collating."""

from __future__ import annotations

import json
import os
import sys
import types
from collections import Counter
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from attempt.data.batching import LengthGroupedBatchSampler, MixtureSampler, mixing_rates
from attempt.data.collate import Collator, make_examples
from attempt.data.sources import DATA_DIR_ENV, DataError, MissingSplitError, load_split, load_user_file
from attempt.data.splits import few_shot, paper_splits
from attempt.tasks import get_task

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get(DATA_DIR_ENV) or REPO.parent / "shared" / "data")
needs_mirror = pytest.mark.skipif(
    not DATA_DIR.is_dir(), reason=f"benchmark mirror not found at {DATA_DIR} (set ATTEMPT_DATA_DIR)"
)


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _rte_rows(count: int, start: int = 0) -> list[dict]:
    return [{"sentence1": f"a {i}", "sentence2": "b", "label": i % 2, "idx": start + i} for i in range(count)]


@pytest.fixture
def mirror(tmp_path):
    """A tiny mirror: rte (small task) with 20/11 rows and sst2 (large task) with 1,500/30 rows."""
    _write_jsonl(tmp_path / "nyu-mll/glue/rte/train.jsonl", _rte_rows(20))
    _write_jsonl(tmp_path / "nyu-mll/glue/rte/validation.jsonl", _rte_rows(11, start=100))
    sst2 = [{"sentence": f"s {i}", "label": i % 2, "idx": i} for i in range(1530)]
    _write_jsonl(tmp_path / "nyu-mll/glue/sst2/train.jsonl", sst2[:1500])
    _write_jsonl(tmp_path / "nyu-mll/glue/sst2/validation.jsonl", sst2[1500:])
    return tmp_path


# ------------------------------------------------------------------------------------------- loading
def test_mirror_by_argument_and_by_env(mirror, monkeypatch):
    assert load_split("rte", "train", mirror) == _rte_rows(20)
    monkeypatch.setenv(DATA_DIR_ENV, str(mirror))
    assert len(load_split("rte", "validation")) == 11


def test_missing_split_names_the_path_and_existing_splits(mirror):
    with pytest.raises(MissingSplitError, match=r"rte/test\.jsonl.*Splits in .*: train, validation"):
        load_split("rte", "test", mirror)
    with pytest.raises(MissingSplitError, match=r"cola/train\.jsonl.*does not exist"):
        load_split("cola", "train", mirror)


def test_hub_path_needs_datasets(monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ImportError, match=r"pip install attempt-tuning\[data\]"):
        load_split("rte", "train")


def test_hub_path_calls_load_dataset_and_filters_mrqa(monkeypatch):
    calls = []
    mrqa_rows = [
        {"subset": subset, "question": "q", "context": "c", "answers": ["a"]}
        for subset in ("SQuAD", "NewsQA")
    ]

    def load_dataset(hub_id, config, split):
        calls.append((hub_id, config, split))
        return _rte_rows(3) if hub_id == "nyu-mll/glue" else mrqa_rows

    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    assert len(load_split("rte", "train")) == 3
    assert load_split("newsqa", "validation") == mrqa_rows[1:]
    assert calls == [("nyu-mll/glue", "rte", "train"), ("mrqa-workshop/mrqa", "plain_text", "validation")]
    with pytest.raises(DataError, match="no rows of subset 'HotpotQA' \\(subsets present: NewsQA, SQuAD\\)"):
        load_split("hotpotqa", "validation")


def test_user_files_with_column_mapping(tmp_path):
    csv_path = tmp_path / "mine.csv"
    csv_path.write_text("premise,hypothesis,label\nA cat.,An animal.,entailment\nA dog.,A fish.,1\n")
    rows = load_user_file(csv_path, "rte", columns={"premise": "sentence1", "hypothesis": "sentence2"})
    assert [get_task("rte").format(row) for row in rows] == [
        ("rte sentence1: A cat. sentence2: An animal.", "entailment"),
        ("rte sentence1: A dog. sentence2: A fish.", "not_entailment"),
    ]
    tsv_path = tmp_path / "mine.tsv"
    tsv_path.write_text("sentence1\tsentence2\tlabel\na\tb\t3.2\n")
    assert load_user_file(tsv_path, "stsb")[0]["label"] == 3.2
    jsonl_path = _write_jsonl(tmp_path / "qa.jsonl", [{"question": "q", "context": "c", "answers": "x"}])
    assert get_task("squad").target_text(load_user_file(jsonl_path, "squad")[0]) == "x"


def test_bad_data_errors_name_file_row_and_field(tmp_path, mirror):
    # rows are named by their file line, counted from 1 (the CSV header is line 1)
    path = tmp_path / "bad.csv"
    path.write_text("sentence1,label\na,0\n")
    with pytest.raises(DataError, match=r"bad\.csv, line 2: field\(s\) 'sentence2' missing for task 'rte'"):
        load_user_file(path, "rte")
    path.write_text("sentence1,sentence2,label\na,b,0\nc,d,7\n")
    with pytest.raises(DataError, match=r"bad\.csv, line 3, field 'label'.*outside the label set"):
        load_user_file(path, "rte")
    with pytest.raises(DataError, match=r"column\(s\) 'premise' given in columns= are not in the file"):
        load_user_file(path, "rte", columns={"premise": "sentence1"})
    empty = _write_jsonl(mirror / "nyu-mll/glue/rte/empty.jsonl", [])
    with pytest.raises(DataError, match=rf"{empty.name} has no rows \(empty split\)"):
        load_split("rte", "empty", mirror)
    _write_jsonl(
        mirror / "nyu-mll/glue/rte/unlabelled.jsonl", [{"sentence1": "a", "sentence2": "b", "label": -1}]
    )
    with pytest.raises(DataError, match=r"unlabelled\.jsonl, line 1, field 'label'"):
        load_split("rte", "unlabelled", mirror)


# -------------------------------------------------------------------------------------------- splits
def _ids(rows):
    return [row["idx"] for row in rows]


def test_small_task_halves_validation_deterministically(mirror):
    splits = paper_splits("rte", mirror, seed=42)
    assert splits == paper_splits("rte", mirror, seed=42)
    assert _ids(splits["train"]) == list(range(20))
    assert (len(splits["validation"]), len(splits["test"])) == (5, 6)
    assert sorted(_ids(splits["validation"]) + _ids(splits["test"])) == list(range(100, 111))
    assert _ids(paper_splits("rte", mirror, seed=1)["test"]) != _ids(splits["test"])


def test_large_task_holds_out_1000_train_rows_even_on_a_subsampled_mirror(mirror):
    splits = paper_splits("sst2", mirror, seed=0)
    assert (len(splits["train"]), len(splits["validation"]), len(splits["test"])) == (500, 1000, 30)
    assert set(_ids(splits["train"])).isdisjoint(_ids(splits["validation"]))
    assert _ids(splits["test"]) == list(range(1500, 1530))
    assert _ids(splits["validation"]) == _ids(paper_splits("sst2", mirror, seed=0)["validation"])


@pytest.mark.data
@needs_mirror
def test_paper_splits_on_the_real_mirror():
    rte = paper_splits("rte", DATA_DIR)
    assert (len(rte["train"]), len(rte["validation"]), len(rte["test"])) == (2490, 138, 139)
    assert set(_ids(rte["validation"])).isdisjoint(_ids(rte["test"]))
    mnli = paper_splits("mnli", DATA_DIR)
    assert (len(mnli["train"]), len(mnli["validation"]), len(mnli["test"])) == (9999, 1000, 9815)
    multirc = paper_splits("multirc", DATA_DIR)
    questions = [
        {(r["idx"]["paragraph"], r["idx"]["question"]) for r in multirc[key]}
        for key in ("validation", "test")
    ]
    assert questions[0].isdisjoint(questions[1]) and len(multirc["validation"]) + len(multirc["test"]) == 4848
    qqp = paper_splits("qqp", DATA_DIR, official_validation="validation_bimpm_proxy")
    assert (len(qqp["train"]), len(qqp["validation"]), len(qqp["test"])) == (31869, 1000, 18405)
    with pytest.raises(MissingSplitError, match="Splits in .*: train_fewglue32, validation_fewglue32"):
        paper_splits("record", DATA_DIR)


def test_few_shot_is_balanced_and_deterministic():
    rows = _rte_rows(40)
    sample = few_shot(rows, "rte", k=4, seed=7)
    assert Counter(row["label"] for row in sample) == {0: 4, 1: 4}
    assert sample == few_shot(rows, "rte", k=4, seed=7)
    assert _ids(sample) != _ids(few_shot(rows, "rte", k=4, seed=8))
    with pytest.raises(ValueError, match=r"label 'entailment' \(id 0\) has 20 rows, fewer than k=32"):
        few_shot(rows, "rte", k=32)
    stsb = [{"sentence1": "a", "sentence2": "b", "label": i / 10, "idx": i} for i in range(50)]
    assert len(few_shot(stsb, "stsb", k=16, seed=0)) == 32  # regression / QA: 2 * k random rows


def test_few_shot_allow_fewer_takes_every_row_of_a_small_class():
    rows = [r for r in _rte_rows(40) if r["label"] == 1] + [r for r in _rte_rows(40) if r["label"] == 0][:5]
    sample = few_shot(rows, "rte", k=8, seed=3, allow_fewer=True)
    assert Counter(row["label"] for row in sample) == {0: 5, 1: 8}
    assert {r["idx"] for r in sample if r["label"] == 0} == {r["idx"] for r in rows if r["label"] == 0}
    assert sample == few_shot(rows, "rte", k=8, seed=3, allow_fewer=True)
    with pytest.raises(ValueError, match="fewer than k=8"):
        few_shot(rows, "rte", k=8, seed=3)


def test_mixing_rates_with_cap_and_temperature():
    assert mixing_rates([1000, 100, 10]).tolist() == pytest.approx([1000 / 1110, 100 / 1110, 10 / 1110])
    assert mixing_rates([1000, 100, 10], cap=100).tolist() == pytest.approx([100 / 210, 100 / 210, 10 / 210])
    assert mixing_rates([400, 100], temperature=2.0).tolist() == pytest.approx([2 / 3, 1 / 3])


def test_mixture_sampler_proportions_and_determinism():
    sampler = MixtureSampler([1000, 100, 10], cap=100, num_samples=21_000, seed=3)
    pairs = list(sampler)
    assert pairs == list(MixtureSampler([1000, 100, 10], cap=100, num_samples=21_000, seed=3))
    counts = Counter(task for task, _ in pairs)
    assert counts[0] / 21_000 == pytest.approx(100 / 210, abs=0.015)
    assert counts[2] / 21_000 == pytest.approx(10 / 210, abs=0.005)
    first_pass = [index for task, index in pairs if task == 2][:10]
    assert sorted(first_pass) == list(range(10))  # every example once before any repeats
    assert len(MixtureSampler([5, 500], cap=100)) == 105


def test_length_grouped_batches():
    lengths = [(i * 37) % 23 for i in range(103)]
    sampler = LengthGroupedBatchSampler(lengths, batch_size=4, seed=1, group_factor=5)
    batches = list(sampler)
    assert batches == list(LengthGroupedBatchSampler(lengths, batch_size=4, seed=1, group_factor=5))
    assert sorted(i for batch in batches for i in batch) == list(range(103)) and len(batches) == len(sampler)
    assert all(lengths[b[0]] >= lengths[b[-1]] for b in batches)
    assert len(LengthGroupedBatchSampler(lengths, batch_size=4, drop_last=True)) == 25


# ------------------------------------------------------------------------------------------ collating
WORDS = "[PAD] [UNK] [CLS] [SEP] </s> rte stsb sentence1 sentence2 : a b c d . entailment not_entailment 3 8"
VOCAB = {word: i for i, word in enumerate(WORDS.split())}


def _tokenizer(style: str) -> PreTrainedTokenizerFast:
    """A tiny offline word-level tokenizer: "t5" appends </s>, "bert" adds [CLS]/[SEP], "gpt" has no pad."""
    backend = Tokenizer(models.WordLevel(VOCAB, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    if style == "t5":
        backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 4)])
    if style == "bert":
        backend.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
        )
    pad = None if style == "gpt" else "[PAD]"
    names = (
        ["input_ids", "token_type_ids", "attention_mask"]
        if style == "bert"
        else ["input_ids", "attention_mask"]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token=pad, unk_token="[UNK]", eos_token="</s>", model_input_names=names
    )


def _ids_of(text: str) -> list[int]:
    return [VOCAB[word] for word in text.split()]


ROW_A = {"sentence1": "a b", "sentence2": "c", "label": 0}
ROW_B = {"sentence1": "a", "sentence2": "c d .", "label": 1}
SOURCE_A = _ids_of("rte sentence1 : a b sentence2 : c")  # 8 tokens
SOURCE_B = _ids_of("rte sentence1 : a sentence2 : c d .")  # 9 tokens
ENT, NOT_ENT, EOS, PAD = VOCAB["entailment"], VOCAB["not_entailment"], VOCAB["</s>"], VOCAB["[PAD]"]


def test_seq2seq_batch():
    collator = Collator(_tokenizer("t5"), "seq2seq", ["stsb", "rte"])
    stsb_row = {**ROW_A, "label": 3.75}
    batch = collator(
        [{"task": "rte", "row": ROW_B, "index": 5}, {"task": "stsb", "row": stsb_row, "index": 9}]
    )
    stsb_source = [VOCAB["stsb"], *SOURCE_A[1:]]
    assert batch["input_ids"].tolist() == [SOURCE_B + [EOS], stsb_source + [EOS, PAD]]
    assert batch["attention_mask"].tolist() == [[1] * 10, [1] * 9 + [0]]
    assert batch["labels"].tolist() == [[NOT_ENT, EOS, -100, -100], _ids_of("3 . 8 </s>")]
    assert batch["task_ids"].tolist() == [1, 0] and batch.example_ids == [5, 9]
    assert batch.examples[1]["row"] is stsb_row
    assert set(batch) == {"input_ids", "attention_mask", "labels", "task_ids"}  # model(**batch) safe
    generation = collator(make_examples("rte", [ROW_A]), for_generation=True)
    assert set(generation) == {"input_ids", "attention_mask", "task_ids"}
    uncached = Collator(_tokenizer("t5"), "seq2seq", ["stsb", "rte"], cache=False)
    assert uncached(make_examples("rte", [ROW_A]))["input_ids"].tolist() == [SOURCE_A + [EOS]]
    fixed = Collator(_tokenizer("t5"), "seq2seq", ["rte"], max_source_length=4, pad_to=6)(
        make_examples("rte", [ROW_A])
    )
    assert fixed["input_ids"].tolist() == [SOURCE_A[:3] + [EOS, PAD, PAD]]


def test_causal_training_and_generation_batches():
    tokenizer = _tokenizer("gpt")  # no pad token: eos pads
    collator = Collator(tokenizer, "causal", ["rte"])
    batch = collator(make_examples("rte", [ROW_A, ROW_B]))
    assert batch["input_ids"].shape == (2, 11)
    assert batch["input_ids"].tolist() == [SOURCE_A + [ENT, EOS, EOS], SOURCE_B + [NOT_ENT, EOS]]
    assert batch["labels"].tolist() == [[-100] * 8 + [ENT, EOS, -100], [-100] * 9 + [NOT_ENT, EOS]]
    assert batch["attention_mask"].tolist() == [[1] * 10 + [0], [1] * 11]
    generation = collator(make_examples("rte", [ROW_A, ROW_B]), for_generation=True)
    assert generation["input_ids"].tolist() == [[EOS] + SOURCE_A, SOURCE_B]  # left padding
    assert generation["attention_mask"].tolist() == [[0] + [1] * 8, [1] * 9]
    assert "labels" not in generation
    with pytest.raises(ValueError, match="pad_to=16 is shorter than the longest causal input"):
        Collator(tokenizer, "causal", ["rte"], max_source_length=16, max_target_length=4, pad_to=16)


def test_encoder_batch_pairs_token_types_and_labels():
    collator = Collator(_tokenizer("bert"), "encoder", ["rte", "stsb"])
    batch = collator(make_examples("rte", [ROW_A, ROW_B]))
    cls, sep = VOCAB["[CLS]"], VOCAB["[SEP]"]
    assert batch["input_ids"].tolist() == [
        [cls, *_ids_of("a b"), sep, *_ids_of("c"), sep, PAD],
        [cls, *_ids_of("a"), sep, *_ids_of("c d ."), sep],
    ]
    assert batch["token_type_ids"].tolist() == [[0, 0, 0, 0, 1, 1, 0], [0, 0, 0, 1, 1, 1, 1]]
    assert batch["labels"].dtype == torch.long and batch["labels"].tolist() == [0, 1]
    stsb = collator(make_examples("stsb", [{**ROW_A, "label": 2.5}]))
    assert stsb["labels"].dtype == torch.float and stsb["task_ids"].tolist() == [1]
    with pytest.raises(ValueError, match="'cola' is not in the collator's task list"):
        collator([("cola", {"sentence": "a", "label": 0})])


def test_encoder_batch_mixing_classification_and_regression_keeps_scores():
    from attempt.testing import build_tokenizer

    tokenizer = build_tokenizer("encoder")
    collator = Collator(tokenizer, "encoder", ["rte", "stsb"])
    rte = make_examples("rte", [{"sentence1": "a cat", "sentence2": "a dog", "label": 1, "idx": 0}])
    stsb = make_examples("stsb", [{"sentence1": "a cat", "sentence2": "a dog", "label": 3.8, "idx": 0}])
    batch = collator(rte + stsb)
    assert batch["labels"].dtype == torch.float32
    assert batch["labels"].tolist() == pytest.approx([1.0, 3.8])
    assert batch["task_ids"].tolist() == [0, 1]


def test_test_limit_and_split_seed(data_dir):
    """test_limit caps the test rows on their own; a fixed split_seed keeps the same test rows while the seed
    still draws another k-shot sample."""
    from attempt.config import TrainConfig
    from attempt.data.splits import load_task_data

    def data(seed, **fields):
        return load_task_data(TrainConfig(tasks=("rte",), data_dir=str(data_dir), seed=seed, **fields))["rte"]

    limited = data(1, eval_limit=5, test_limit=7)
    assert (len(limited["validation"]), len(limited["test"])) == (5, 7)
    assert len(data(1, eval_limit=5)["test"]) == 5
    one, two = data(1, k_shot=4, split_seed=0), data(2, k_shot=4, split_seed=0)
    assert one["test"] == two["test"] and one["validation"] == two["validation"]
    assert one["train"] != two["train"]
    assert data(1, k_shot=4)["test"] != data(2, k_shot=4)["test"]  # without it the seed moves the split
    with pytest.raises(ValueError, match="test_limit must be >= 1"):
        TrainConfig(test_limit=0)
