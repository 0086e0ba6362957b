"""benchmarks/reproduce.py: a --tiny --quick pass writes every report key, and a second pass recomputes nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks import reproduce as reproduce_benchmark
from benchmarks import reproduce_report


@pytest.fixture(scope="module")
def reproduce():
    return reproduce_benchmark


def test_mean_std_and_claims_on_made_up_numbers():
    report = reproduce_report
    assert report.mean_std([1.0, 3.0]) == {"mean": 2.0, "std": pytest.approx(2**0.5), "n": 2}
    assert report.mean_std([float("nan")])["mean"] is None
    targets = ["rte", "cb"]
    entry = lambda v: {"mean": v, "std": 0.0, "n": 1}  # noqa: E731
    agg = {
        "table": {
            t: {
                "prompt_tuning": entry(50),
                "spot": entry(55),
                "attempt": entry(60),
                "attempt_m": entry(61),
                "finetune": entry(70),
            }
            for t in targets
        },
        "average": {"prompt_tuning": 50, "spot": 55, "attempt": 60, "attempt_m": 61, "finetune": 70},
        "trainable_parameters": {"attempt": 10, "finetune": 10_000},
        "few_shot": {"rte": {"k=4": {"attempt": entry(52), "prompt_tuning": entry(51)}}},
    }
    verdicts = [c["verdict"] for c in report.claims(agg, targets)]
    assert verdicts == [
        "holds",
        "holds",
        "does not hold",
        "holds",
    ]  # 10 points below fine-tuning is not close


def test_tiny_quick_writes_report_and_resumes(reproduce, tmp_path, data_dir):
    first = reproduce.run(tmp_path, reproduce.Options(tiny=True, data_dir=data_dir), log=lambda *_: None)
    written = json.loads((tmp_path / "reproduce.json").read_text())
    for key in (
        "mode",
        "backbone",
        "sizes",
        "targets",
        "sources",
        "cells",
        "aggregate",
        "attention",
        "claims",
        "plots",
        "cells_computed",
        "cells_reused",
        "wall_time_s",
        "cells_wall_time_s",
        "paper_note",
        "lr_grid",
    ):
        assert key in written, key
    assert set(written["aggregate"]) == {"table", "average", "trainable_parameters", "few_shot", "ablation"}
    for task in written["targets"]:  # the temperature ablation beside the paper's ATTEMPT, with its attention
        entries = written["aggregate"]["ablation"][task]
        assert set(entries) == {"attempt", *reproduce.ABLATION_METHODS}, task
        assert all(0 < e["top_mean_attention"] <= e["peak_attention"] <= 1 for e in entries.values()), task
    reach = written["attention_reach"]["this_backbone"]
    assert reach["prompts"] == [*written["sources"], "target"]
    assert reach["uniform_weight"] < reach["d·e"]["max_weight"] < reach["√d"]["max_weight"] <= 1
    assert "## Why the attention stays near uniform here" in (tmp_path / "reproduce.md").read_text()
    for task in written["targets"]:
        assert set(written["aggregate"]["table"][task]) == set(reproduce.METHODS), task
    params = written["aggregate"]["trainable_parameters"]
    assert params["attempt"] < params["finetune"] and params["lora"] < params["finetune"]
    few = written["aggregate"]["few_shot"]["boolq"]
    assert set(few["k=4"]) == set(reproduce.FEW_SHOT_METHODS)
    assert all("skipped" in entry for entry in few["k=16"].values())  # FewGLUE's 32 rows: 14 false < 16
    assert [c["verdict"] in ("holds", "does not hold", "not measured") for c in written["claims"]] == [
        True
    ] * 4
    assert set(written["attention"]["multi_task"]) == set(written["targets"])
    assert set(written["attention"]["single_task"]) == set(written["targets"])
    assert first["cells_computed"] > 0 and first["cells_reused"] == 0
    assert (tmp_path / "reproduce.md").read_text().startswith("# Reproduction")
    assert (tmp_path / "reproduce_attention.png").stat().st_size > 1000
    assert (tmp_path / "reproduce_attention_multitask.png").stat().st_size > 1000
    assert (tmp_path / "reproduce_attention_sqrt_d.png").stat().st_size > 1000
    runs = Path(written["runs_dir"])
    assert not any(runs.rglob("checkpoint")), "finished cells keep no weights by default"
    stamps = {p: p.stat().st_mtime_ns for p in runs.rglob("results.json")}

    second = reproduce.run(tmp_path, reproduce.Options(tiny=True, data_dir=data_dir), log=lambda *_: None)
    assert second["cells_computed"] == 0
    assert second["cells_reused"] == first["cells_computed"]
    assert {p: p.stat().st_mtime_ns for p in runs.rglob("results.json")} == stamps
    assert second["aggregate"] == first["aggregate"]
    assert second["attention_reach"] == first["attention_reach"]


def test_full_sizes_validate_multi_task_runs_as_often_as_single_task_runs(reproduce, tmp_path, data_dir):
    runner = reproduce.Runner(
        tmp_path, reproduce.Options(mode="full", tiny=True, data_dir=data_dir), log=lambda *_: None
    )
    shutil.rmtree(runner.data_dir, ignore_errors=True)  # only symlinks; no cell runs here
    runner.sizes = reproduce.SIZES["full"]
    every = runner.sizes["eval_every"]
    assert runner.config("attempt", ("rte",), 0.3, 0, tmp_path / "a").eval_every == every
    assert runner.config("attempt", ("rte", "cb", "cola"), 0.3, 0, tmp_path / "b").eval_every == 3 * every
    assert (
        runner.config("source", ("mnli",), 0.03, 0, tmp_path / "c").eval_every
        == runner.sizes["source_eval_every"]
    )
    assert set(runner.sizes["targets"]) <= set(reproduce.TARGETS)
    assert set(runner.sizes["few_shot_tasks"]) <= set(runner.sizes["targets"])


def test_threads_are_restored_after_a_run(reproduce, tmp_path, data_dir):
    import torch

    before = torch.get_num_threads()
    reproduce.run(tmp_path, reproduce.Options(tiny=True, data_dir=data_dir, threads=1), log=lambda *_: None)
    assert json.loads((tmp_path / "reproduce.json").read_text())["machine"].split()[1] == "1"
    assert torch.get_num_threads() == before


def test_report_only_reads_finished_cells_and_trains_nothing(reproduce, tmp_path, data_dir):
    quiet = {"tiny": True, "data_dir": data_dir}
    silent = lambda *_: None  # noqa: E731
    empty = reproduce.run(tmp_path / "empty", reproduce.Options(compute=False, **quiet), log=silent)
    assert empty["cells_computed"] == 0 and empty["cells_missing"] > 0
    assert not list((tmp_path / "empty").rglob("results.json"))

    full = reproduce.run(tmp_path, reproduce.Options(**quiet), log=silent)
    runs = Path(full["runs_dir"])
    [lost] = list((runs / "cells" / "attempt" / "rte").glob("lr*_s0/results.json"))
    lost.unlink()  # as if that cell were still running
    partial = reproduce.run(tmp_path, reproduce.Options(compute=False, **quiet), log=silent)
    assert partial["cells_computed"] == 0 and partial["cells_missing"] == 1
    assert not lost.exists()
    assert "attempt" not in partial["aggregate"]["table"]["rte"]
    assert partial["aggregate"]["table"]["cb"]["attempt"] == full["aggregate"]["table"]["cb"]["attempt"]
    assert "PARTIAL REPORT" in (tmp_path / "reproduce.md").read_text()
    assert partial["claims_targets"] == ["cb"] and full["claims_targets"] == full["targets"]


def test_stages_train_only_the_named_stages(reproduce, tmp_path, data_dir):
    quiet = {"tiny": True, "data_dir": data_dir}
    silent = lambda *_: None  # noqa: E731
    ablation = reproduce.run(tmp_path, reproduce.Options(stages=("ablation",), **quiet), log=silent)
    trained = {c["stage"] for c in ablation["cells"] if not c.get("missing") and not c.get("skipped")}
    assert trained == {"source", "ablation"} and ablation["cells_missing"] > 0
    rest = reproduce.run(tmp_path, reproduce.Options(stages=("main", "few_shot"), **quiet), log=silent)
    assert rest["cells_missing"] == 0 and rest["cells_reused"] == ablation["cells_computed"]
    with pytest.raises(ValueError, match="choose from main, few_shot, ablation"):
        reproduce.run(tmp_path, reproduce.Options(stages=("mian",), **quiet), log=silent)


def test_methods_and_steps_make_a_smaller_grid_of_its_own(reproduce, tmp_path, data_dir):
    quiet = {"tiny": True, "data_dir": data_dir}
    silent = lambda *_: None  # noqa: E731
    default = reproduce.run(tmp_path, reproduce.Options(methods=("prompt_tuning",), **quiet), log=silent)
    picked = reproduce.run(
        tmp_path, reproduce.Options(methods=("prompt_tuning", "attempt_sqrt_d"), steps=3, **quiet), log=silent
    )
    assert Path(picked["runs_dir"]).name == "tiny-steps3-tiny-bert" and picked["sizes"]["steps"] == 3
    assert all(c["reused"] for c in picked["cells"] if c["stage"] == "source")  # the default grid's sources
    assert default["report_stem"] == "reproduce" and picked["report_stem"] == "reproduce-steps3"
    assert (tmp_path / "reproduce-steps3.md").is_file() and (tmp_path / "reproduce.md").is_file()
    assert json.loads((tmp_path / "reproduce.json").read_text())["methods"] == ["prompt_tuning"]
    assert picked["methods"] == ["prompt_tuning", "attempt_sqrt_d"] and picked["cells_missing"] == 0
    assert {c["method"] for c in picked["cells"]} == {"source", "prompt_tuning", "attempt_sqrt_d"}
    assert all(c["steps"] == 3 for c in picked["cells"] if c["stage"] in ("main", "ablation"))
    for task in picked["targets"]:
        assert set(picked["aggregate"]["table"][task]) == {"prompt_tuning"}
        assert set(picked["aggregate"]["ablation"][task]) == {"attempt_sqrt_d"}
    assert [c["verdict"] for c in picked["claims"]] == ["not measured"] * 3 + ["not measured"]
    with pytest.raises(ValueError, match="Unknown method"):
        reproduce.run(tmp_path, reproduce.Options(methods=("attempt_x",), **quiet), log=silent)
