"""benchmarks/main_table.py (issue 22): the pilot's budget rule by hand, the cell order, and a tiny table that
runs its pilot and cells, scores each cell at step 0 and at the end, and resumes from its JSON-lines file."""

from __future__ import annotations

import shutil

import pytest
import torch

from attempt.prompts.library import PromptLibrary, SourcePrompt
from benchmarks import main_table
from benchmarks.common import read_records


def test_the_budget_is_the_first_step_every_pilot_curve_is_within_two_points_of_its_best():
    curves = {
        "rte": [(50, 50.0), (100, 55.0), (150, 60.0), (200, 59.0)],  # best 60: 58+ first at 150
        "cb": [(50, 40.0), (100, 70.0), (150, 71.5), (200, 69.0)],
    }  # best 71.5: 69.5+ first at 100
    assert main_table.budget_from_pilot(curves) == 200  # 150 rounded up to a hundred
    assert main_table.budget_from_pilot({"cb": curves["cb"]}) == 100


def test_small_tasks_get_three_seeds_and_large_ones_one():
    assert main_table.seeds_of("rte") == (0, 1, 2) and main_table.seeds_of("cb") == (0, 1, 2)
    assert main_table.seeds_of("mnli") == (0,) and main_table.seeds_of("multirc") == (0,)


def test_cells_without_sources_come_first_and_seed_zero_before_the_others(tmp_path, data_dir):
    options = main_table.Options(targets=("rte", "mnli"), methods=("prompt_tuning", "attempt"), tiny=True)
    table = main_table.MainTable(options, tmp_path, data_dir)
    assert table.order() == [
        ("prompt_tuning", "rte", 0), ("prompt_tuning", "mnli", 0), ("prompt_tuning", "rte", 1),
        ("prompt_tuning", "rte", 2), ("attempt", "rte", 0), ("attempt", "mnli", 0), ("attempt", "rte", 1),
        ("attempt", "rte", 2),
    ]  # fmt: skip


@pytest.mark.slow
def test_a_tiny_table_runs_its_pilot_and_cells_scores_step_zero_and_resumes(tmp_path, data_dir):
    library = PromptLibrary(tmp_path / "lib")
    for i, name in enumerate(("mnli", "qnli")):
        torch.manual_seed(i)
        library.add(SourcePrompt(name, torch.randn(4, 32) * 0.5, task=name, backbone="tiny"))
    argv = ["--tiny", "--library", str(tmp_path / "lib"), "--out", str(tmp_path / "out"), "--data-dir",
            str(data_dir), "--targets", "cb", "--methods", "prompt_tuning", "spot", "attempt", "--threads", "1",
            "--sources", "mnli", "qnli"]  # fmt: skip
    assert main_table.main(argv) == 0
    records = read_records(tmp_path / "out" / "cells-tiny-llama.jsonl")
    kinds = sorted((r["kind"], r.get("method"), r["task"], r.get("seed")) for r in records)
    assert kinds == sorted(
        [("pilot", None, "rte", None), ("pilot", None, "cb", None), ("spot_source", None, "cb", None)]
        + [("cell", m, "cb", s) for m in ("prompt_tuning", "spot", "attempt") for s in (0, 1, 2)]
    )
    cells = [r for r in records if r["kind"] == "cell"]
    assert all(r["steps"] == main_table.budget_from_pilot(
        {r["task"]: r["curve"] for r in records if r["kind"] == "pilot"}) for r in cells)  # fmt: skip
    assert all(set(r["step0"]) == {"cb", "average"} and "test" in r for r in cells)
    first = (tmp_path / "out" / "cells-tiny-llama.jsonl").read_text()
    assert main_table.main([*argv, "--report-only"]) == 0  # nothing is run again
    assert (tmp_path / "out" / "cells-tiny-llama.jsonl").read_text() == first


def test_an_unfinished_pilot_run_is_stashed_and_resumed_in_a_later_session(tmp_path, data_dir):
    options = main_table.Options(targets=("cb",), tiny=True, pilot_steps=4, pilot_every=2, eval_limit=4)
    table = main_table.MainTable(options, tmp_path / "out", data_dir)
    run = table.root / "pilot" / "rte"
    (run / "checkpoint").mkdir(parents=True)
    (run / "checkpoint" / "state.json").write_text('{"step": 2}')
    (run / "metrics.jsonl").write_text("{}\n")
    assert table.stash() == [tmp_path / "out" / "state" / "tiny-llama" / "pilot" / "rte"]
    assert (table.state / "pilot" / "rte" / "checkpoint" / "state.json").read_text() == '{"step": 2}'
    shutil.rmtree(table.root)  # a new session: the run folders are gone, the committed state is not
    assert main_table.restore_run(run, table.state / "pilot" / "rte")
    assert (run / "checkpoint" / "state.json").read_text() == '{"step": 2}'
