"""benchmarks/reproduce_fewshot.py: a tiny pass runs every cell, reports paired differences, and resumes."""

from __future__ import annotations

import json
import math

import pytest
import torch

from attempt.prompts import PromptLibrary, SourcePrompt
from conftest import load_benchmark


@pytest.fixture(scope="module")
def fewshot():
    return load_benchmark("reproduce_fewshot")


def test_paired_difference_and_its_interval_by_hand(fewshot):
    cells = [{"method": m, "task": "cb", "k": 16, "seed": s, "test": v}
             for m, values in (("attempt", (60, 62, 70)), ("prompt_tuning", (50, 55, 58))) for s, v in enumerate(values)]
    p = fewshot.paired(cells, "attempt", "prompt_tuning", "cb", 16)
    diffs = [10, 7, 12]
    mean, sd = sum(diffs) / 3, math.sqrt(sum((d - 29 / 3) ** 2 for d in diffs) / 2)
    half = 4.302652729911275 * sd / math.sqrt(3)  # t(0.975, 2 degrees of freedom)
    assert p["mean"] == pytest.approx(mean) and p["ci95"] == pytest.approx([mean - half, mean + half])
    assert p["verdict"] == "a > b" and p["seeds"] == [0, 1, 2]
    assert fewshot.paired(cells[:4], "attempt", "prompt_tuning", "cb", 16) is None  # one paired seed: no interval
    assert fewshot._verdict(p) == "ATTEMPT > PT"
    assert fewshot._verdict({**p, "verdict": "no difference at 95%"}) == "no difference at 95%"


def test_attention_stats_of_uniform_and_peaked_rows(fewshot):
    uniform = fewshot.attention_stats([{"a": 0.5, "b": 0.5}, {"a": 0.5, "b": 0.5}])
    assert uniform["entropy"] == pytest.approx(math.log(2)) and uniform["input_spread"] == 0
    peaked = fewshot.attention_stats([{"a": 1.0, "b": 0.0}, {"a": 0.0, "b": 1.0}])
    assert peaked["peak"] == 1 and peaked["entropy"] == 0 and peaked["input_spread"] == pytest.approx(0.5)


def test_tiny_grid_runs_every_cell_and_resumes(fewshot, tmp_path, data_dir):
    library = PromptLibrary(tmp_path / "lib")
    for i, name in enumerate(("mnli", "sst2")):
        library.add(SourcePrompt(name, torch.randn(4, 32, generator=torch.Generator().manual_seed(i)), task=name))
    options = fewshot.Options(library=tmp_path / "lib", sources=("mnli", "sst2"), targets=("cb", "rte"), ks=(16,), seeds=(0, 1), steps=2,
                              batch=4, test_limit=6, eval_limit=6, tiny=True)  # fmt: skip
    first = fewshot.run(options, tmp_path / "out", data_dir, log=lambda *_: None)
    assert first["cells_computed"] == 2 * 2 * 5 and first["cells_missing"] == 0
    assert set(first["spot_sources"]) == {"cb", "rte"}
    assert {p["b"] for p in first["summary"]["paired"]} == {"prompt_tuning", "spot"}
    attention = first["summary"]["attention"]
    assert {"cb attempt", "cb attempt_paper", "rte attempt", "rte attempt_paper"} == set(attention)
    assert first["test_rows"] == {"cb": 6, "rte": 6}
    reach = first["attention_reach"]["this backbone"]
    assert reach["auto"]["max_weight"] > 0.9 > reach["paper"]["max_weight"] >= reach["uniform"] == 1 / 3
    written = (tmp_path / "out" / "reproduce-fewshot-tiny.md").read_text()
    assert "ATTEMPT − baseline" in written and "PARTIAL" not in written
    again = fewshot.run(options, tmp_path / "out", data_dir, log=lambda *_: None)
    assert again["cells_computed"] == 0 and again["cells_reused"] == 20
    assert json.loads((tmp_path / "out" / "reproduce-fewshot-tiny.json").read_text())["summary"] == again["summary"]
    # every method and seed saw the same test rows: the seed moves the k-shot sample, not the split
    root = tmp_path / "out" / "reproduce" / "fewshot-tiny-llama"
    for task in ("cb", "rte"):
        sources = set()
        for cell in (c for c in first["cells"] if c["task"] == task):
            lines = (root / cell["output_dir"] / "test_predictions.jsonl").read_text().splitlines()
            sources.add(tuple(json.loads(line)["source"] for line in lines))
        assert len(sources) == 1 and len(next(iter(sources))) == 6
