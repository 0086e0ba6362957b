"""benchmarks/reproduce_fewshot.py (and its report): a tiny pass runs every cell, reports paired differences, and
resumes from the grid's file of finished cells."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from attempt.prompts.library import PromptLibrary, SourcePrompt
from benchmarks import reproduce_fewshot, reproduce_fewshot_report
from benchmarks.common import read_records


@pytest.fixture(scope="module")
def fewshot():
    return reproduce_fewshot


@pytest.fixture(scope="module")
def fewshot_report():
    return reproduce_fewshot_report


def test_paired_difference_and_its_interval_by_hand(fewshot_report):
    cells = [
        {"method": m, "task": "cb", "k": 16, "seed": s, "test": v}
        for m, values in (("attempt", (60, 62, 70)), ("prompt_tuning", (50, 55, 58)))
        for s, v in enumerate(values)
    ]
    p = fewshot_report.paired(cells, "attempt", "prompt_tuning", "cb", 16)
    diffs = [10, 7, 12]
    mean, sd = sum(diffs) / 3, math.sqrt(sum((d - 29 / 3) ** 2 for d in diffs) / 2)
    half = 4.302652729911275 * sd / math.sqrt(3)  # t(0.975, 2 degrees of freedom)
    assert p["mean"] == pytest.approx(mean) and p["ci95"] == pytest.approx([mean - half, mean + half])
    assert p["verdict"] == "a > b" and p["seeds"] == [0, 1, 2]
    assert (
        fewshot_report.paired(cells[:4], "attempt", "prompt_tuning", "cb", 16) is None
    )  # one paired seed: no interval
    assert fewshot_report._verdict(p) == "ATTEMPT (T auto) > PT"
    assert fewshot_report._verdict({**p, "verdict": "no difference at 95%"}) == "no difference at 95%"


def test_claim_verdicts_count_the_cells_each_way(fewshot_report):
    def pair(a, b, task, verdict, mean):
        return {"a": a, "b": b, "task": task, "k": 16, "verdict": verdict, "mean": mean}

    summary = {"paired": [pair("attempt", "prompt_tuning", "cb", "a > b", 5.0),
                          pair("attempt", "prompt_tuning", "rte", "a > b", 3.0),
                          pair("attempt", "spot", "cb", "a < b", -4.0),
                          pair("attempt", "spot", "rte", "no difference at 95%", 1.0),
                          pair("attempt", "attempt_paper", "cb", "no difference at 95%", 0.5),
                          pair("attempt", "lora", "cb", "a > b", 2.0), pair("attempt", "lora", "rte", "a < b", -2.0)],
               "attention": {"cb attempt": {"input_spread": 0.0001}, "rte attempt": {"input_spread": 0.002},
                             "cb attempt_paper": {"input_spread": 0.3}}}  # fmt: skip
    verdicts = {c.get("b", "input"): c for c in fewshot_report.claims(summary)}
    assert verdicts["prompt_tuning"]["verdict"] == "holds" and verdicts["prompt_tuning"]["ahead"] == 2
    assert verdicts["spot"]["verdict"] == "does not hold: behind in 1 of 2, no difference in the rest"
    assert verdicts["attempt_paper"]["verdict"] == "not shown: no difference at 95% in all 1"
    assert verdicts["lora"]["verdict"] == "mixed: ahead in 1, behind in 1 of 2"
    assert verdicts["spot"]["cells"] == "cb k=16 -4.0, rte k=16 +1.0"
    assert (
        verdicts["input"]["verdict"] == "does not hold: input spread below 0.05"
    )  # attempt_paper's 0.3 not counted
    summary["attention"]["rte attempt"]["input_spread"] = 0.06
    assert {c.get("b", "input"): c["verdict"] for c in fewshot_report.claims(summary)}["input"] == "holds"
    assert fewshot_report.claims({"paired": [], "attention": {}})[0]["verdict"] == "not measured"


def test_attention_stats_of_uniform_and_peaked_rows(fewshot_report):
    uniform = fewshot_report.attention_stats([{"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5}])
    assert uniform["entropy"] == pytest.approx(math.log(2)) and uniform["input_spread"] == 0
    peaked = fewshot_report.attention_stats([{"a": 1.0, "b": 0.0}, {"a": 0.0, "b": 1.0}])
    assert peaked["peak"] == 1 and peaked["entropy"] == 0 and peaked["input_spread"] == pytest.approx(0.5)


def test_tiny_grid_runs_every_cell_and_resumes(fewshot, tmp_path, data_dir):
    library = PromptLibrary(tmp_path / "lib")
    for i, name in enumerate(("mnli", "sst2")):
        library.add(
            SourcePrompt(name, torch.randn(4, 32, generator=torch.Generator().manual_seed(i)), task=name)
        )
    options = fewshot.Options(library=tmp_path / "lib", sources=("mnli", "sst2"), targets=("cb", "rte"), ks=(16,), seeds=(0, 1), steps=2,
                              batch=4, test_limit=6, eval_limit=6, tiny=True)  # fmt: skip
    first = fewshot.run(options, tmp_path / "out", data_dir, log=lambda *_: None)
    assert first["cells_computed"] == 2 * 2 * 5 and first["cells_missing"] == 0
    assert set(first["spot_sources"]) == {"cb", "rte"}
    pairs = [(p["a"], p["b"], p["task"]) for p in first["summary"]["paired"]]
    assert pairs == [("attempt", b, t) for t in ("cb", "rte") for b in ("prompt_tuning", "spot")] + [
        ("attempt", b, t) for b in ("attempt_paper", "lora") for t in ("cb", "rte")]  # fmt: skip
    attention = first["summary"]["attention"]
    assert {"cb attempt", "cb attempt_paper", "rte attempt", "rte attempt_paper"} == set(attention)
    assert first["test_rows"] == {"cb": 6, "rte": 6}
    assert set(first["majority"]) == {"cb", "rte"} and 0 < first["majority"]["rte"] <= 100
    reach = first["attention_reach"]["this backbone"]
    assert reach["auto"]["max_weight"] > 0.9 > reach["paper"]["max_weight"] >= reach["uniform"] == 1 / 3
    written = (tmp_path / "out" / "reproduce-fewshot-tiny.md").read_text()
    assert "method − baseline" in written and "PARTIAL" not in written and "mean-pooled" not in written
    assert [c["pairs"] for c in first["summary"]["claims"][:4]] == [
        2,
        2,
        2,
        2,
    ] and "Verdict per claim" in written
    again = fewshot.run(options, tmp_path / "out", data_dir, log=lambda *_: None)
    assert again["cells_computed"] == 0 and again["cells_reused"] == 20
    assert (
        json.loads((tmp_path / "out" / "reproduce-fewshot-tiny.json").read_text())["summary"]
        == again["summary"]
    )
    # every method and seed saw the same test rows: the seed moves the k-shot sample, not the split
    root = tmp_path / "out" / "runs" / "tiny-llama"
    for task in ("cb", "rte"):
        sources = set()
        for cell in (c for c in first["cells"] if c["task"] == task):
            lines = (root / cell["output_dir"] / "test_predictions.jsonl").read_text().splitlines()
            sources.add(tuple(json.loads(line)["source"] for line in lines))
        assert len(sources) == 1 and len(next(iter(sources))) == 6
    # a new session: the run tree is gone, the grid's committed file brings every finished cell back, none is rerun
    kept = read_records(tmp_path / "out" / "cells-tiny-llama.jsonl")
    assert [(r["kind"], r["task"]) for r in kept[:2]] == [("spot_source", "cb"), ("spot_source", "rte")]
    assert [tuple(r[k] for k in ("method", "task", "k", "seed")) for r in kept[2:5]] == [
        ("prompt_tuning", "cb", 16, 0), ("spot", "cb", 16, 0), ("attempt", "cb", 16, 0)]  # fmt: skip
    assert len(kept) == 2 + 20 and all(r["kind"] == "cell" for r in kept[2:])
    attempt_cb = kept[4]
    assert set(attempt_cb) == {"kind", "method", "task", "k", "seed", "test", "validation", "test_metrics",
                               "wall_time_s", "attention", "examples"}  # fmt: skip
    columns = attempt_cb["examples"]  # one list per key, one per prompt under attention_weights
    assert set(columns) == {"idx", "prediction", "reference", "attention_weights"}  # no input text
    assert set(columns["attention_weights"]) == set(attempt_cb["attention"]["mean_weights"])  # every prompt
    assert all(len(values) == 6 for values in [columns["idx"], *columns["attention_weights"].values()])
    assert len(fewshot.example_rows(columns)) == 6
    (tmp_path / "out" / "cells-tiny-llama.jsonl").unlink()  # as if cut off before its cells were kept
    rekept = fewshot.run(options, tmp_path / "out", data_dir, log=lambda *_: None)
    assert rekept["cells_computed"] == 0 and rekept["cells_reused"] == 20  # read from their run folders
    assert len(read_records(tmp_path / "out" / "cells-tiny-llama.jsonl")) == 2 + 20
    shutil.rmtree(tmp_path / "out" / "runs")
    restored = fewshot.run(options, tmp_path / "out", data_dir, log=lambda *_: None)
    assert restored["cells_computed"] == 0 and restored["cells_reused"] == 20
    assert restored["summary"]["paired"] == again["summary"]["paired"]
    assert restored["spot_sources"] == again["spot_sources"]
    att, att_again = (
        restored["summary"]["attention"]["cb attempt"],
        again["summary"]["attention"]["cb attempt"],
    )
    assert att["peak"] == pytest.approx(att_again["peak"], abs=1e-5)


def test_the_grid_keeps_only_finished_cells_without_their_input_texts(fewshot, tmp_path):
    done, partial = (
        tmp_path / "cells" / "attempt" / "cb" / "k16_s0",
        tmp_path / "cells" / "attempt" / "cb" / "k16_s1",
    )
    done.mkdir(parents=True), partial.mkdir(parents=True)
    (done / "results.json").write_text(json.dumps({"test": {"average": 50.0}, "validation": {"average": 40.0},
                                                   "wall_time_s": 3.0}))  # fmt: skip
    (done / "test_predictions.jsonl").write_text(
        json.dumps(
            {"source": "long text", "prediction": "a", "attention_weights": {"x": 0.1234567, "y": 0.8765433}}
        )
        + "\n"
    )
    (partial / "metrics.jsonl").write_text("")  # no results.json: unfinished, not a cell to keep
    key = {"method": "attempt", "task": "cb", "k": 16, "seed": 0}
    record = fewshot.cell_record(key, done)
    assert record["examples"] == {
        "prediction": ["a"],
        "attention_weights": {"x": [0.123457], "y": [0.876543]},
    }
    assert fewshot.example_rows(record["examples"]) == [
        {"prediction": "a", "attention_weights": {"x": 0.123457, "y": 0.876543}}
    ]
    assert (record["test"], record["validation"], record["wall_time_s"]) == (50.0, 40.0, 3.0)
    assert record["attention"]["peak"] == pytest.approx(0.8765433)  # from the weights as run, not as kept
    with pytest.raises(FileNotFoundError):
        fewshot.cell_record({**key, "seed": 1}, partial)


def test_an_ablation_runs_after_the_grid_and_is_paired_with_attempt(fewshot, tmp_path, data_dir):
    library = PromptLibrary(tmp_path / "lib")
    for i, name in enumerate(("mnli", "sst2")):
        library.add(
            SourcePrompt(name, torch.randn(4, 32, generator=torch.Generator().manual_seed(i)), task=name)
        )
    options = fewshot.Options(library=tmp_path / "lib", sources=("mnli", "sst2"), targets=("cb",), ks=(16,), seeds=(0, 1), steps=2,
                              batch=4, test_limit=6, eval_limit=6, tiny=True, ablations=("attempt_mean",))  # fmt: skip
    result = fewshot.run(options, tmp_path / "out", data_dir, log=lambda *_: None)
    assert [c["method"] for c in result["cells"]][-2:] == ["attempt_mean", "attempt_mean"]  # after the grid
    root = tmp_path / "out" / "runs" / "tiny-llama"
    saved = json.loads((root / "cells/attempt_mean/cb/k16_s0/train_config.json").read_text())
    assert saved["mode"] == "attempt" and saved["attempt"]["pooling"] == "mean"
    assert (
        json.loads((root / "cells/attempt/cb/k16_s0/train_config.json").read_text())["attempt"].get(
            "pooling", "max"
        )
        == "max"
    )
    assert [(p["a"], p["b"]) for p in result["summary"]["paired"]][-1] == ("attempt_mean", "attempt")
    assert "cb attempt_mean" in result["summary"]["attention"]
    assert "ATTEMPT (mean-pooled x̂)" in (tmp_path / "out" / "reproduce-fewshot-tiny.md").read_text()


def test_majority_score_uses_the_tasks_own_metrics(fewshot):
    """cb's score is the mean of accuracy and macro-F1: answering the majority class on 14 / 11 / 3 rows gives
    accuracy 50 and macro-F1 (2/3 + 0 + 0) / 3 = 22.2."""
    rows = [{"premise": "p", "hypothesis": "h", "label": label, "idx": i}
            for i, label in enumerate([0] * 14 + [1] * 11 + [2] * 3)]  # fmt: skip
    assert fewshot.majority_score("cb", rows) == pytest.approx((50.0 + 200 / 9) / 2)
    rte = [
        {"sentence1": "a", "sentence2": "b", "label": label, "idx": i} for i, label in enumerate([1, 1, 0])
    ]
    assert fewshot.majority_score("rte", rte) == pytest.approx(200 / 3)


def test_examples_kept_as_columns_come_back_as_the_rows_they_were(fewshot):
    rows = [
        {"idx": 3, "prediction": "yes", "reference": "no", "attention_weights": {"a": 0.25, "b": 0.75}},
        {"idx": 4, "prediction": "no"},  # no reference, no attention: left out again, not None
        {"idx": 5, "prediction": "no", "reference": "no", "attention_weights": {"a": 1.0, "b": 0.0}},
    ]
    columns = fewshot.example_columns(rows)
    assert columns == {
        "idx": [3, 4, 5],
        "prediction": ["yes", "no", "no"],
        "reference": ["no", None, "no"],
        "attention_weights": {"a": [0.25, None, 1.0], "b": [0.75, None, 0.0]},
    }
    assert fewshot.example_rows(columns) == rows
    assert fewshot.example_columns(columns) is columns  # already columns: unchanged
    old = {"kind": "cell", "task": "cb", "examples": rows}  # a record written before the columns
    assert fewshot.compact_record(old) == {"kind": "cell", "task": "cb", "examples": columns}


def test_the_committed_few_shot_cells_file_stays_under_two_megabytes():
    path = (
        Path(__file__).resolve().parents[1]
        / "benchmarks/results/reproduce_fewshot/cells-SmolLM2-135M-Instruct.jsonl"
    )
    assert path.stat().st_size < 2_000_000
    assert all(not isinstance(r.get("examples"), list) for r in read_records(path))  # every record compacted
