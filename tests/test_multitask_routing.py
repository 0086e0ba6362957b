"""benchmarks/multitask_routing.py: the routing numbers by hand, and a tiny multi-task run end to end."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch

from attempt.prompts.library import PromptLibrary, SourcePrompt
from benchmarks import multitask_routing


@pytest.fixture(scope="module")
def routing_bench():
    return multitask_routing


def test_routing_renormalises_over_the_sources_and_measures_the_distance(routing_bench):
    rows = [{"task": "sst2", "attention_weights": {"mnli": 0.1, "sst2": 0.3, "target": 0.6}},
            {"task": "sst2", "attention_weights": {"mnli": 0.2, "sst2": 0.6, "target": 0.2}},
            {"task": "rte", "attention_weights": {"mnli": 0.6, "sst2": 0.2, "target": 0.2}},
            {"task": "rte", "attention_weights": {"mnli": 0.3, "sst2": 0.1, "target": 0.6}}]  # fmt: skip
    result = routing_bench.routing(rows, ("mnli", "sst2"))
    sst2, rte = result["tasks"]["sst2"], result["tasks"]["rte"]
    assert sst2["mean"] == pytest.approx({"mnli": 0.25, "sst2": 0.75}) and sst2["spread"] == pytest.approx(0)
    assert rte["mean"] == pytest.approx({"mnli": 0.75, "sst2": 0.25}) and rte["rows"] == 2
    assert result["distance"] == pytest.approx(0.5)  # (|0.25 - 0.75| + |0.75 - 0.25|) / 2
    same = routing_bench.routing([{**r, "task": "sst2" if i % 2 else "rte"} for i, r in enumerate(rows[:2] * 2)],
                                 ("mnli", "sst2"))  # fmt: skip
    assert same["distance"] == pytest.approx(0)


@pytest.mark.data
def test_a_tiny_multitask_run_reports_each_tasks_routing(routing_bench, tmp_path, data_dir):
    library = PromptLibrary(tmp_path / "lib")
    for i, name in enumerate(("mnli", "sst2")):
        library.add(
            SourcePrompt(name, torch.randn(4, 32, generator=torch.Generator().manual_seed(i)), task=name)
        )
    options = routing_bench.Options(library=tmp_path / "lib", sources=("mnli", "sst2"), seeds=(0, 1), steps=2,
                                    batch=4, train_limit=8, test_limit=6, tiny=True)  # fmt: skip
    results = routing_bench.run(options, tmp_path / "out", data_dir)
    assert [r["seed"] for r in results["runs"]] == [0, 1]
    for r in results["runs"]:
        assert set(r["routing"]["tasks"]) == {"sst2", "rte"} and 0 <= r["routing"]["distance"] <= 1
        assert all(
            t["rows"] == 6 and sum(t["mean"].values()) == pytest.approx(1)
            for t in r["routing"]["tasks"].values()
        )
    written = (tmp_path / "out" / "multitask-routing-tiny-llama.md").read_text()
    assert "| 1 | rte |" in written and "Total-variation distance" in written
    saved = json.loads((tmp_path / "out" / "multitask-routing-tiny-llama.json").read_text())
    assert saved["runs"] == results["runs"]
    finished = sorted((tmp_path / "out" / "runs").rglob("results.json"))
    stamps = [p.stat().st_mtime_ns for p in finished]
    again = routing_bench.run(
        options, tmp_path / "out", data_dir
    )  # finished seeds are read back, not retrained
    assert again["runs"] == results["runs"] and [p.stat().st_mtime_ns for p in finished] == stamps
    assert len(finished) == 2
    shutil.rmtree(tmp_path / "out" / "runs")  # a new session: only the committed JSON is left
    more = routing_bench.run(dataclasses.replace(options, seeds=(0, 1, 2)), tmp_path / "out", data_dir)
    assert more["runs"][:2] == results["runs"] and more["runs"][2]["seed"] == 2
    assert sorted(p.parent.name for p in (tmp_path / "out" / "runs").rglob("results.json")) == ["seed2"]
    faster = routing_bench.run(
        dataclasses.replace(options, attention_lr=0.1, seeds=(0,)), tmp_path / "out", data_dir
    )
    assert (
        faster["options"]["attention_lr"] == 0.1
        and "attention 0.1"
        in (tmp_path / "out" / "multitask-routing-tiny-llama-attention-lr0.1.md").read_text()
    )
    assert (
        json.loads((tmp_path / "out" / "multitask-routing-tiny-llama.json").read_text())["runs"]
        == more["runs"]
    )
    longer = routing_bench.run(dataclasses.replace(options, steps=3, seeds=(0,)), tmp_path / "out", data_dir)
    assert (
        longer["options"]["steps"] == 3 and len(list((tmp_path / "out" / "runs").rglob("results.json"))) == 3
    )
    centred = routing_bench.run(
        dataclasses.replace(options, centre_inputs=True, seeds=(0,)), tmp_path / "out", data_dir
    )
    assert "x̂ centred" in (tmp_path / "out" / "multitask-routing-tiny-llama-centred.md").read_text()
    assert (
        centred["runs"][0]["routing"] != more["runs"][0]["routing"]
    )  # the same seed, another attention input
    older = json.loads((tmp_path / "out" / "multitask-routing-tiny-llama.json").read_text())
    del older["options"]["centre_inputs"]  # a JSON written before the option existed still counts
    (tmp_path / "out" / "multitask-routing-tiny-llama.json").write_text(json.dumps(older))
    assert routing_bench._kept_runs(
        tmp_path / "out" / "multitask-routing-tiny-llama.json", longer["options"]
    ).keys() == {0}
