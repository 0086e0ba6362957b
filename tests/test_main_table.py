"""benchmarks/main_table.py (issue 22): the pilot's budget rule by hand, the cell order, and a tiny table that
runs its pilot and cells, scores each cell at step 0 and at the end, and resumes from its JSON-lines file; its
report (benchmarks/main_table_report.py): sections, rebuilt byte for byte from the cells file alone, paired
differences against a hand computation, verdicts only from cells that are there, the paper's numbers as the
shared file prints them; SPoT's choice through `rank_sources`."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from pathlib import Path

import pytest
import torch

from attempt.prompts.library import PromptLibrary, SourcePrompt
from benchmarks import main_table, main_table_report
from benchmarks.common import commit, read_records, write_records


def _tiny_library(folder):
    """Random source prompts named mnli and qnli for the tiny causal LM (hidden size 32)."""
    library = PromptLibrary(folder)
    for i, name in enumerate(("mnli", "qnli")):
        torch.manual_seed(i)
        library.add(SourcePrompt(name, torch.randn(4, 32) * 0.5, task=name, backbone="tiny"))
    return library


SECTIONS = ("## The pilot: the step budget", "## Scores", "## Paired differences", "## Verdicts", "## Attention",
            "## Cost", "## Precision", "## Missing")  # fmt: skip


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


def test_seed_zero_of_every_method_comes_first_and_within_a_seed_cells_without_sources(tmp_path, data_dir):
    options = main_table.Options(targets=("rte", "mnli"), methods=("prompt_tuning", "attempt"), tiny=True)
    table = main_table.MainTable(options, tmp_path, data_dir)
    assert table.order() == [
        ("prompt_tuning", "rte", 0), ("prompt_tuning", "mnli", 0), ("attempt", "rte", 0), ("attempt", "mnli", 0),
        ("prompt_tuning", "rte", 1), ("attempt", "rte", 1), ("prompt_tuning", "rte", 2), ("attempt", "rte", 2),
    ]  # fmt: skip


def test_attempt_m_is_one_cell_per_seed_over_glue_never_one_per_target(tmp_path, data_dir):
    options = main_table.Options(targets=("rte", "cb"), methods=("attempt", "attempt_m"), tiny=True)
    cells = main_table.MainTable(options, tmp_path, data_dir).order()
    assert [c for c in cells if c[0] == "attempt_m"] == [("attempt_m", "glue", s) for s in (0, 1, 2)]


@pytest.mark.slow
def test_a_tiny_table_runs_its_pilot_and_cells_scores_step_zero_and_resumes(tmp_path, data_dir):
    _tiny_library(tmp_path / "lib")
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
    written = {
        name: (tmp_path / "out" / f"main_table-tiny-llama.{name}").read_bytes() for name in ("md", "json")
    }
    text = written["md"].decode()
    assert [line for line in text.splitlines() if line.startswith("## ")] == list(SECTIONS)
    assert "python -m benchmarks.main_table --tiny --out" in text and "--report-only" in text
    assert "| cb | accuracy | " in text and "ATTEMPT − PT | cb |" in text and "| cb | ATTEMPT | 3 |" in text
    shutil.rmtree(tmp_path / "out" / "runs")  # the report reads the cells file alone
    assert main_table.main([*argv, "--report-only"]) == 0  # nothing is run again
    assert (tmp_path / "out" / "cells-tiny-llama.jsonl").read_text() == first
    for name, content in written.items():
        assert (tmp_path / "out" / f"main_table-tiny-llama.{name}").read_bytes() == content


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


def test_an_unfinished_cell_is_stashed_with_the_minutes_it_cost_up_to_its_checkpoint(tmp_path, data_dir):
    options = main_table.Options(targets=("cb",), tiny=True)
    table = main_table.MainTable(options, tmp_path / "out", data_dir)
    run = table.root / "cells" / "prompt_tuning" / "cb" / "s1"
    (run / "checkpoint").mkdir(parents=True)
    (run / "checkpoint" / "state.json").write_text('{"step": 100}')
    (run / main_table.CLOCK).write_text(json.dumps({"started": 1000.0, "earlier_s": 30.0}))
    os.utime(run / "checkpoint" / "state.json", (1600.0, 1600.0))  # checkpointed 600 s into this session
    finished = table.root / "cells" / "prompt_tuning" / "cb" / "s0"
    (finished / "checkpoint").mkdir(parents=True)
    table.kept[main_table._key_of({"kind": "cell", "method": "prompt_tuning", "task": "cb", "seed": 0})] = {}
    state = tmp_path / "out" / "state" / "tiny-llama" / "cells" / "prompt_tuning" / "cb" / "s1"
    assert table.stash() == [state]  # the finished cell is not stashed
    assert json.loads((state / main_table.CLOCK).read_text()) == {"earlier_s": 630.0}
    assert (state / "checkpoint" / "state.json").read_text() == '{"step": 100}'


# -- the report, on records written by hand -------------------------------------------------------------------
def _cell(
    method: str,
    task: str,
    seed: int,
    final: float,
    step0: float = 50.0,
    seconds: float = 60.0,
    precision: str | None = main_table_report.PRECISION,
) -> dict:
    tasks = main_table_report.GLUE if method == "attempt_m" else (task,)
    metrics = {t: {main_table_report.metric_of(t): final, "average": final} for t in tasks}
    start = {t: {main_table_report.metric_of(t): step0, "average": step0} for t in tasks}
    return {"kind": "cell", "method": method, "task": task, "seed": seed, "test": final, "validation": final,
            "test_metrics": {**metrics, "average": final}, "wall_time_s": seconds, "steps": 300, "step0": start,
            "step0_average": step0, "cell_time_s": seconds, "examples": [],
            **({} if precision is None else {"mixed_precision": precision})}  # fmt: skip


def _records() -> list[dict]:
    pilot = [{"kind": "pilot", "task": "rte", "curve": [[50, 50.0], [100, 58.0], [150, 61.0]]},
             {"kind": "pilot", "task": "cb", "curve": [[50, 40.0], [100, 70.0], [150, 69.0]]}]  # fmt: skip
    cells = [_cell("prompt_tuning", "rte", s, v) for s, v in enumerate((55.0, 57.0, 59.0))]
    cells += [_cell("attempt", "rte", s, v, seconds=120.0) for s, v in enumerate((57.0, 61.0, 65.0))]
    cells[-1]["attention"] = {"peak": 0.5, "max_peak": 0.6, "entropy": 1.0, "uniform_entropy": 1.1,
                              "input_spread": 0.01, "mean_weights": {"mnli": 0.3, "qnli": 0.2, "target": 0.5}}  # fmt: skip
    return pilot + cells


def test_a_paired_difference_and_its_interval_are_the_hand_computed_t_interval_over_seeds():
    summary = main_table_report.summarise(_records())
    (pair,) = [
        p for p in summary["paired"] if (p["a"], p["b"], p["task"]) == ("attempt", "prompt_tuning", "rte")
    ]
    # ATTEMPT − PT per seed: 2, 4, 6: mean 4, sd 2; t(0.975, 2 df) = 4.302652729911275 (a t table)
    half = 4.302652729911275 * 2 / math.sqrt(3)
    assert pair["diffs"] == [2.0, 4.0, 6.0] and pair["mean"] == pytest.approx(4.0)
    assert pair["ci95"] == pytest.approx([4.0 - half, 4.0 + half])
    stats = pytest.importorskip("scipy.stats")
    assert pair["ci95"] == pytest.approx(list(stats.t.interval(0.95, 2, loc=4.0, scale=stats.sem([2, 4, 6]))))
    claim = next(c for c in summary["claims"] if c["claim"] == "ATTEMPT > PT")
    assert claim["outcomes"] == {"rte": "undecided"}  # the interval [-0.97, 8.97] holds 0
    assert claim["verdict"].startswith("so far (1 of 14 tasks): not shown")


def test_a_claim_whose_cells_are_missing_is_not_measured_yet_never_given_a_verdict():
    verdicts = {c["claim"]: c["verdict"] for c in main_table_report.summarise(_records())["claims"]}
    for claim in ("ATTEMPT ≥ SPoT", "ATTEMPT within 1 point of fine-tuning (LoRA)", "ATTEMPT-m ≥ ATTEMPT"):
        assert verdicts[claim] == "not measured yet"
    nothing = main_table_report.summarise([])
    assert {c["verdict"] for c in nothing["claims"]} == {"not measured yet"}
    assert nothing["missing"]["cell_count"] == nothing["missing"]["planned_count"]


def test_averages_are_over_the_tasks_every_method_in_them_has_finished():
    records = _records() + [_cell("prompt_tuning", "mrpc", s, 70.0) for s in (0, 1, 2)]
    records += [_cell("attempt", "mrpc", 0, 80.0)]  # one seed of three: mrpc is not finished for ATTEMPT
    glue = main_table_report.summarise(records)["averages"]["GLUE"]
    assert glue["tasks"] == ["rte"] and glue["methods"] == ["prompt_tuning", "attempt"]
    assert glue["ours"] == {"prompt_tuning": pytest.approx(57.0), "attempt": pytest.approx(61.0)}
    assert glue["paper"] == {"prompt_tuning": 54.7, "attempt": 73.4}


def test_the_report_of_a_cells_file_is_rebuilt_byte_for_byte_and_lists_what_is_missing(tmp_path):
    cells = tmp_path / "cells-tiny-llama.jsonl"
    write_records(cells, _records() + [_cell("attempt_m", "glue", 0, 66.0)])
    command = main_table.report_command(tmp_path, tiny=True)
    first = {k: p.read_bytes() for k, p in main_table_report.write(cells, command).items()}
    again = {k: p.read_bytes() for k, p in main_table_report.write(cells, command).items()}
    assert first == again
    text = first["md"].decode()
    assert [line for line in text.splitlines() if line.startswith("## ")] == list(SECTIONS)
    assert "**Budget: 200 steps**" in text  # rte within 2 of 61 from 150, cb within 2 of 70 from 100
    assert "| rte | accuracy | 57.0 ± 2.0 (3) [54.7] |" in text and "- SPoT: cola (seeds 0, 1, 2)" in text
    assert "| mrpc | accuracy | – [68.1] | – [79.7] | – [85.7] | 66.0 (1) [86.1] |" in text
    # the attention of the one seed that has it
    assert "| rte | ATTEMPT | 1 | 0.300 | 0.200 | 0.500 |" in text
    numbers = json.loads(first["json"])
    assert numbers["summary"]["cost"]["method_minutes"] == {
        "prompt_tuning": 3.0,
        "attempt": 6.0,
        "attempt_m": 1.0,
    }
    assert "total 10 minutes" in text
    # no cell records a commit: every one trained with the whole-row LM head, and the report says nothing of it
    assert numbers["summary"]["cost"]["whole_row_head_cells"] == 7 and "LM head" not in text


def test_the_cost_section_counts_the_cells_trained_with_the_lm_head_on_the_label_positions_only(tmp_path):
    records = _records()
    for cell in records[-2:]:
        cell["commit"] = "abc1234"  # ran by code that records its commit: the label-positions LM head
    cost = main_table_report.summarise(records)["cost"]
    assert (cost["whole_row_head_cells"], cost["label_head_cells"]) == (4, 2)
    cells = tmp_path / "cells-tiny-llama.jsonl"
    write_records(cells, records)
    text = main_table_report.write(cells, main_table.report_command(tmp_path, tiny=True))["md"].read_text()
    assert "4 of these cells trained with the LM head on every position of a row, 2 (those that" in text


def test_the_cost_section_counts_the_cells_by_their_threads_and_the_cells_running_beside_them(tmp_path):
    records = _records()
    for cell, (threads, at_once) in zip(records[-3:], [(1, 2), (1, 2), (2, 1)], strict=True):
        cell.update(threads=threads, cells_at_once=at_once)  # recorded by the parallel processes' code
    cost = main_table_report.summarise(records)["cost"]
    assert cost["setups"] == {"1 thread(s), 2 cell(s) at once": 2, "2 thread(s), 1 cell(s) at once": 1}
    assert cost["setup_unrecorded"] == 3
    cells = tmp_path / "cells-tiny-llama.jsonl"
    write_records(cells, records)
    text = main_table_report.write(cells, main_table.report_command(tmp_path, tiny=True))["md"].read_text()
    assert (
        "each began): 2 with 1 thread(s), 2 cell(s) at once, 1 with 2 thread(s), 1 cell(s) at once; 3 from before"
        in text
    )


def test_the_transcribed_paper_numbers_are_those_of_the_shared_file():
    path = Path(main_table.REPO.parent / "shared" / "paper_numbers.md")
    if not path.is_file():
        pytest.skip(f"{path} not found")
    wanted = {name for name, *_ in main_table_report.PAPER_ROWS.values()}
    rows = {}
    for line in path.read_text().split("## 2.")[0].splitlines():  # section 1, tables 1a and 1b
        cells = [c.strip().strip("*").strip() for c in line.strip().strip("|").split("|")]
        name = re.sub(r"\s*[¹²³⁴⁵⁶]$", "", cells[0])  # "LoRA ¹": a footnote mark
        if name in wanted and len(cells) == 18:  # method, #params, 8 GLUE, avg, 5 SuperGLUE, avg, source
            numbers = [float(re.match(r"[\d.]+", c.strip("*")).group()) for c in cells[2:17]]
            rows[name] = [*numbers[:8], *numbers[9:14], numbers[8], numbers[14]]
    assert set(rows) == wanted
    for method, (name, tasks, glue, superglue) in main_table_report.PAPER_ROWS.items():
        assert rows[name] == [*tasks, glue, superglue], method


def test_spot_source_ranks_with_rank_sources_and_keeps_the_untrained_scores_the_old_evaluation_gave(
    tmp_path, data_dir
):
    from attempt.data.splits import load_task_data
    from attempt.evaluation.evaluate import evaluate
    from attempt.runs.build import build_model

    _tiny_library(tmp_path / "lib")
    options = main_table.Options(library=tmp_path / "lib", sources=("mnli", "qnli"), targets=("cb",), tiny=True,
                                 prompt_length=4, eval_limit=8)  # fmt: skip
    table = main_table.MainTable(options, tmp_path / "out", data_dir)
    chosen = table.spot_source("cb", compute=True)
    (record,) = [r for r in read_records(table.store) if r["kind"] == "spot_source"]
    backbone, tokenizer, family = table.backbone()
    before = {}  # what spot_source computed before it called rank_sources (commit c055f9a)
    for name in options.sources:
        config = table.config("spot", ("cb",), 0, table.root / "spot", 1, source_prompts=(name,))
        model = build_model(config, backbone, tokenizer, family)
        rows = {"cb": load_task_data(config)["cb"]["validation"]}
        with table.autocast():  # the table's precision (bf16 autocast), as its cells score
            before[name] = evaluate(model, tokenizer, rows, batch_size=32, max_source_length=128)["average"]
    assert list(record["validation_untrained"]) == ["mnli", "qnli"]
    assert record["validation_untrained"] == pytest.approx(before)
    assert chosen == record["chosen"] == max(before, key=before.get)


def test_cells_written_before_the_columns_are_read_back_with_their_examples_as_columns(tmp_path, data_dir):
    rows = [
        {"idx": 0, "prediction": "yes", "reference": "no"},
        {"idx": 1, "prediction": "no", "reference": "no"},
    ]
    old = {
        "kind": "cell",
        "method": "prompt_tuning",
        "task": "rte",
        "seed": 0,
        "test": 50.0,
        "examples": rows,
    }
    name = "tiny-llama"
    write_records(tmp_path / f"cells-{name}.jsonl", [old])  # as the runner at c055f9a wrote them
    table = main_table.MainTable(main_table.Options(tiny=True), tmp_path, data_dir, log=lambda *_: None)
    kept = table.kept[("cell", "prompt_tuning", "rte", 0, "no")]  # written before cells recorded precision
    assert kept["examples"] == {"idx": [0, 1], "prediction": ["yes", "no"], "reference": ["no", "no"]}
    assert {k: v for k, v in kept.items() if k != "examples"} == {
        k: v for k, v in old.items() if k != "examples"
    }


def test_the_missing_cells_are_projected_at_the_mean_minutes_of_each_methods_finished_cells(tmp_path):
    records = _records()  # prompt tuning rte: 3 cells of 60 s; ATTEMPT rte: 3 of 120 s
    lacking = {"prompt_tuning cb": [0, 1, 2], "attempt cb": [0], "lora cb": [0, 1], "attempt_m glue": [0]}
    every = (3 * 1.0 + 3 * 2.0) / 6  # minutes, over all finished cells: lora and ATTEMPT-m have none
    expected = 3 * 1.0 + 1 * 2.0 + 2 * every + 8 * every
    assert main_table_report.projected_hours(records, lacking) == pytest.approx(expected / 60)
    assert main_table_report.projected_hours(records[:2], lacking) is None  # pilot records only
    write_records(tmp_path / "cells-x.jsonl", records)
    text = main_table_report.write(tmp_path / "cells-x.jsonl", "command")["md"].read_text()
    hours = main_table_report.summarise(records)["missing"]["projected_hours"]
    assert f"they would take about {hours:.0f} hours of this machine" in text


class _Stopped(Exception):
    """The end of a session, simulated: raised by a step hook after the cell's first checkpoint."""


@pytest.mark.slow
def test_a_cell_cut_off_after_its_first_checkpoint_resumes_from_its_stash_to_the_uninterrupted_scores(
    tmp_path, data_dir, monkeypatch
):
    from attempt.training import loop

    options = main_table.Options(targets=("cb",), tiny=True, steps=20, cell_every=10, test_limit=8, eval_limit=8,
                                 prompt_length=4)  # fmt: skip
    whole = main_table.MainTable(options, tmp_path / "whole", data_dir).run_cell(
        "prompt_tuning", "cb", 0, 20, True
    )
    table = main_table.MainTable(options, tmp_path / "cut", data_dir)
    train = loop.train

    def cut_at_step_12(config, **kwargs):
        def stop(step, model):
            if step == 12:
                raise _Stopped

        return train(config, **kwargs, _on_step=stop)

    monkeypatch.setattr(loop, "train", cut_at_step_12)
    with pytest.raises(_Stopped):
        table.run_cell("prompt_tuning", "cb", 0, 20, True)
    monkeypatch.setattr(loop, "train", train)
    (state,) = table.stash()
    assert json.loads((state / main_table.CLOCK).read_text())["earlier_s"] > 0
    assert (state / main_table.STEP0).is_file()  # its step-0 score travels with the stash
    shutil.rmtree(
        table.cells_folder(options.mixed_precision)
    )  # a new session: the run folders are gone, the stash is committed
    again = main_table.MainTable(options, tmp_path / "cut", data_dir)
    steps = []
    monkeypatch.setattr(
        loop, "train", lambda config, **kw: train(config, **kw, _on_step=lambda s, m: steps.append(s))
    )
    monkeypatch.setattr(again, "step0", lambda config: pytest.fail("step 0 scored again on resuming"))
    resumed = again.run_cell("prompt_tuning", "cb", 0, 20, True)
    assert steps == list(range(11, 21))  # from the checkpoint of step 10, not from the start
    assert resumed["step0"] == whole["step0"]  # read back from the stash: the score the whole cell made
    assert resumed["resumed"] and "resumed" not in whole
    assert resumed["commit"] == whole["commit"] == commit()[0]  # the code that ran it
    assert resumed["test"] == pytest.approx(whole["test"], abs=1e-6)
    assert resumed["test_metrics"]["cb"] == pytest.approx(whole["test_metrics"]["cb"], abs=1e-6)
    assert not state.exists()  # a finished cell's stash is dropped


def test_a_cell_stopped_at_its_last_checkpoint_before_its_test_resumes_to_the_test_alone(
    tmp_path, data_dir, monkeypatch
):
    """What `scripts/background.sh stop --at-checkpoint` does to a cell that checkpoints its last step."""
    from attempt.training import loop

    options = main_table.Options(targets=("cb",), tiny=True, steps=20, cell_every=10, test_limit=8, eval_limit=8,
                                 prompt_length=4)  # fmt: skip
    whole = main_table.MainTable(options, tmp_path / "whole", data_dir).run_cell(
        "prompt_tuning", "cb", 0, 20, True
    )
    table, train = main_table.MainTable(options, tmp_path / "cut", data_dir), loop.train

    def stop_after_last_step(step, model):
        if step == 20:
            raise _Stopped

    monkeypatch.setattr(
        loop, "train", lambda config, **kw: train(config, **kw, _on_step=stop_after_last_step)
    )
    with pytest.raises(_Stopped):
        table.run_cell("prompt_tuning", "cb", 0, 20, True)
    table.stash()
    shutil.rmtree(table.cells_folder(options.mixed_precision))  # a new session
    steps = []
    monkeypatch.setattr(
        loop, "train", lambda config, **kw: train(config, **kw, _on_step=lambda s, m: steps.append(s))
    )
    resumed = main_table.MainTable(options, tmp_path / "cut", data_dir).run_cell(
        "prompt_tuning", "cb", 0, 20, True
    )
    assert steps == []  # no step trained again
    assert (resumed["test"], resumed["validation"]) == (whole["test"], whole["validation"])


def test_a_float32_cell_is_left_out_of_the_table_and_shown_beside_its_twin_at_the_tables_precision():
    old = _cell(
        "prompt_tuning", "rte", 0, 52.5, step0=55.4, seconds=4058.0, precision=None
    )  # before the field
    assert main_table_report.precision_of(old) == "no"
    before = main_table_report.summarise([old])
    assert (
        before["table"]["rte"] == {} and before["missing"]["cell_count"] == before["missing"]["planned_count"]
    )
    assert before["precision"]["check"] == [{"method": "prompt_tuning", "task": "rte", "seed": 0, "precisions": {
        "no": {"step0": 55.4, "test": 52.5, "minutes": pytest.approx(4058.0 / 60), "test_rows": 0}}}]  # fmt: skip
    twin = _cell("prompt_tuning", "rte", 0, 53.0, step0=55.0, seconds=1800.0)
    after = main_table_report.summarise([old, twin])
    assert after["table"]["rte"]["prompt_tuning"]["final"]["values"] == [
        53.0
    ]  # the twin, not the float32 cell
    assert after["precision"]["check"][0]["precisions"][main_table_report.PRECISION] == {
        "step0": 55.0, "test": 53.0, "minutes": 30.0, "test_rows": 0}  # fmt: skip
    bf16 = _cell(
        "prompt_tuning", "rte", 0, 54.0, step0=55.4, seconds=1200.0, precision="bf16"
    )  # bf16 scoring too
    three = main_table_report.summarise([old, twin, bf16])["precision"]["check"]
    assert len(three) == 1 and list(three[0]["precisions"]) == ["no", "bf16", "bf16-train"]
    text = main_table_report.report({"backbone": "tiny", "command": "c", "paper_source": "p", "summary": after,
                                     "provenance": {"exists": False, "cells": "cells.jsonl"}})  # fmt: skip
    assert "| PT | rte | 0 | float32 | 55.4 | 52.5 | 0 | 68 |" in text
    assert "| PT | rte | 0 | bf16 training, float32 scoring | 55.0 | 53.0 | 0 | 30 |" in text
    assert main_table_report.test_rows({"examples": {"idx": [3, 4, 5], "prediction": ["a", "b", "c"]}}) == 3
    assert main_table_report.test_rows({"examples": [{"idx": 3}, {"idx": 4}]}) == 2


def test_a_table_at_one_precision_does_not_take_a_cell_of_another_precision_as_finished(tmp_path, data_dir):
    table = main_table.MainTable(main_table.Options(targets=("rte",), tiny=True), tmp_path / "out", data_dir)
    old = _cell("prompt_tuning", "rte", 0, 52.5, precision=None)
    table.kept[main_table._key_of(old)] = old
    assert table.run_cell("prompt_tuning", "rte", 0, 500, compute=False) is None
    fp32 = main_table.MainTable(
        main_table.Options(targets=("rte",), tiny=True, mixed_precision="no"), tmp_path / "out", data_dir
    )
    fp32.kept[main_table._key_of(old)] = old
    assert fp32.run_cell("prompt_tuning", "rte", 0, 500, compute=False) is old
    config = table.cell_config("prompt_tuning", "rte", 0, 500, compute=False)
    assert (config.mixed_precision, config.eval_in_float32) == ("bf16", True)  # bf16 training, float32 scores
    assert config.output_dir.endswith("cells-bf16-train/prompt_tuning/rte/s0")


def _answered(cell: dict, predictions: list, references: list) -> dict:
    """`cell` with its test rows kept as the runner keeps them (columns, `cell_record`)."""
    return {**cell, "examples": {"idx": list(range(len(references))), "prediction": predictions,
                                 "reference": references}}  # fmt: skip


def _text(summary: dict) -> str:
    return main_table_report.report({"backbone": "tiny", "command": "c", "paper_source": "p", "summary": summary,
                                     "provenance": {"exists": False, "cells": "cells.jsonl"}})  # fmt: skip


def test_the_constant_of_a_task_is_the_best_one_fixed_answer_scores_on_its_metric_by_hand():
    wsc = ["false"] * 5 + ["true"] * 3  # the majority answer is right on 5 of 8 rows
    cola = ["acceptable"] * 6 + ["unacceptable"] * 2
    multirc = ["true"] + ["false"] * 3  # "true" everywhere: precision 1/4, recall 1; "false": no true found
    records = [_answered(_cell("prompt_tuning", "wsc", s, 60.0), ["true"] * 8, wsc) for s in (0, 1, 2)]
    records += [_answered(_cell("lora", "cola", 0, 20.0), cola[::-1], cola),
                _answered(_cell("lora", "multirc", 0, 50.0), ["true"] * 4, multirc)]  # fmt: skip
    found = main_table_report.summarise(records)["constants"]
    assert found["wsc"]["score"] == pytest.approx(100 * 5 / 8) and found["wsc"]["best"] == ["false"]
    assert (found["wsc"]["rows"], found["wsc"]["cells"]) == (8, 3)
    assert found["cola"]["score"] == 0.0  # Matthews of a constant: 0, whichever answer
    assert found["cola"]["best"] == ["acceptable", "unacceptable"]
    f1 = 2 * (1 / 4) * 1 / (1 / 4 + 1)  # = 0.4
    assert found["multirc"]["score"] == pytest.approx(100 * f1) and found["multirc"]["best"] == ["true"]
    assert set(found) == {"wsc", "cola", "multirc"}  # a task without cells has none
    text = _text(main_table_report.summarise(records))
    assert re.search(r"\| wsc \| accuracy \| .* \| 62\.5 \(false\) \|\n", text)
    assert re.search(r"\| cola \| Matthews \| .* \| 0\.0 \|\n", text)  # every answer ties: none named
    assert re.search(r"\| multirc \| F1 \(answers\) \| .* \| 40\.0 \(true\) \|\n", text)


def test_a_cell_whose_test_predictions_are_all_one_answer_is_marked_and_the_footnote_names_the_seed(tmp_path):
    references = ["false"] * 5 + ["true"] * 3
    mixed = ["false", "true"] * 4
    records = [_answered(_cell("prompt_tuning", "wsc", s, v), p, references)
               for s, v, p in ((0, 50.0, mixed), (1, 62.5, ["false"] * 8), (2, 50.0, mixed))]  # fmt: skip
    records += [_answered(_cell("lora", "wsc", s, 50.0), mixed, references) for s in (0, 1, 2)]
    cells = tmp_path / "cells-tiny-llama.jsonl"
    write_records(cells, records)
    written = main_table_report.write(cells, "command")
    text = written["md"].read_text()
    row = (
        "| wsc | accuracy | 54.2 ± 7.2 (3)† [51.9] | – [50.0] | – [53.8] | – [69.2] | 50.0 ± 0.0 (3) [67.3] |"
    )
    assert row in text  # PT marked (seed 1), LoRA not
    assert "† every test prediction is the same answer: PT wsc (seed 1: false).\n" in text
    table = json.loads(written["json"].read_text())["summary"]["table"]["wsc"]  # the JSON holds it too
    assert table["prompt_tuning"]["one_answer"] == [{"seed": 1, "answer": "false"}]
    assert table["lora"]["one_answer"] == []


def test_cells_of_a_task_whose_references_disagree_get_no_constant_and_the_report_says_so():
    records = [_answered(_cell("prompt_tuning", "rte", 0, 50.0), ["entailment"] * 4, ["entailment"] * 4),
               _answered(_cell("lora", "rte", 0, 50.0), ["entailment"] * 4,
                         ["entailment", "not_entailment"] * 2)]  # fmt: skip
    found = main_table_report.summarise(records)["constants"]["rte"]
    assert found["score"] is None and found["why"] == (
        "its cells' test references disagree (PT seed 0: 4 rows; LoRA seed 0: 4 rows)"
    )
    text = _text(main_table_report.summarise(records))
    assert re.search(r"\| rte \| accuracy \| .* \| – \|\n", text)
    assert (
        "- rte: – because its cells' test references disagree (PT seed 0: 4 rows; LoRA seed 0: 4 rows)."
        in text
    )


def test_the_report_counts_the_versions_of_each_source_the_cells_mixed_and_flags_a_second_one():
    cells = [_cell("attempt", "rte", s, 60.0) for s in (0, 1)] + [_cell("spot", "rte", 0, 58.0)]
    cells[0]["source_hashes"] = {"mnli": "aaa", "qnli": "bbb"}
    cells[1]["source_hashes"] = {"mnli": "ccc", "qnli": "bbb"}  # mnli retrained and shipped in between
    cells[2]["source_hashes"] = {"qnli": "bbb"}
    summary = main_table_report.summarise(cells)
    assert summary["source_versions"] == {"mnli": {"aaa": 1, "ccc": 1}, "qnli": {"bbb": 3}}
    text = main_table_report.report({"backbone": "tiny", "command": "c", "paper_source": "p", "summary": summary,
                                     "provenance": {"exists": False, "cells": "cells.jsonl"}})  # fmt: skip
    assert "- mnli: aaa: 1; ccc: 1 **(more than one version" in text and "- qnli: bbb: 3\n" in text


@pytest.mark.slow
def test_a_cell_that_mixes_sources_records_the_content_hash_of_each(tmp_path, data_dir):
    library = _tiny_library(tmp_path / "lib")
    options = main_table.Options(library=tmp_path / "lib", sources=("mnli", "qnli"), targets=("cb",), tiny=True,
                                 steps=2, cell_every=50, test_limit=8, eval_limit=8, prompt_length=4)  # fmt: skip
    table = main_table.MainTable(options, tmp_path / "out", data_dir)
    attempt = table.run_cell("attempt", "cb", 0, 2, True)
    assert attempt["source_hashes"] == {n: library.get(n).hash for n in ("mnli", "qnli")}
    assert "source_hashes" not in table.run_cell("prompt_tuning", "cb", 0, 2, True)


def test_rte_and_mrpc_are_tested_on_the_whole_official_validation_and_validated_on_rows_held_out_of_train(
    tmp_path, data_dir
):
    from attempt.data.sources import load_split
    from attempt.data.splits import load_task_data, paper_splits

    assert main_table.WHOLE_VALIDATION_TEST == ("rte", "mrpc")
    table = main_table.MainTable(main_table.Options(tiny=True, test_limit=10_000), tmp_path / "out", data_dir)
    for task in main_table.WHOLE_VALIDATION_TEST:
        data = load_task_data(table.config("prompt_tuning", (task,), 0, tmp_path / "x", 10))[task]
        assert data["test"] == load_split(task, "validation", table.data_dir)  # every official row, in order
        train = load_split(task, "train", table.data_dir)
        held = [json.dumps(r, sort_keys=True) for r in data["validation"]]
        kept = [json.dumps(r, sort_keys=True) for r in data["train"]]
        assert len(held) == main_table.VALIDATION_FROM_TRAIN and not set(held) & set(kept)
        assert sorted(held + kept) == sorted(json.dumps(r, sort_keys=True) for r in train)
    cb = load_task_data(table.config("prompt_tuning", ("cb",), 0, tmp_path / "x", 10))["cb"]
    assert cb == paper_splits("cb", table.data_dir, seed=0)  # the paper's protocol
