"""benchmarks/source_prompts.py: the standard error, the learning curve reader and the report's verdicts."""

from __future__ import annotations

import json

import pytest

from benchmarks import source_prompts as source_prompts_benchmark


@pytest.fixture(scope="module")
def sources():
    return source_prompts_benchmark


def test_standard_error_of_an_accuracy(sources):
    assert sources.standard_error(50.0, 100) == pytest.approx(5.0)
    assert sources.standard_error(90.0, 900) == pytest.approx(1.0)


def test_validation_curve_reads_only_validation_evaluations(sources, tmp_path):
    lines = [
        {"step": 10, "type": "train", "loss": 1.0},
        {"step": 100, "type": "eval", "split": "validation", "metrics": {"average": 60.0}},
        {"step": 100, "type": "eval", "split": "test", "metrics": {"average": 99.0}},
        {"step": 200, "type": "eval", "split": "validation", "metrics": {"average": 70.0}},
    ]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    assert sources.validation_curve(tmp_path) == [(100, 60.0), (200, 70.0)]


def test_report_says_which_bar_is_met(sources):
    row = {
        "task": "sst2",
        "steps": 600,
        "best_step": 500,
        "test": 88.0,
        "test_rows": 872,
        "two_standard_errors": 2.2,
        "zero_shot": 70.0,
        "step300": 87.0,
        "minilm_300_steps": 73.0,
        "meets_bar": True,
        "beats_own_step300": False,
    }
    stopped = {
        **row,
        "task": "mnli",
        "meets_bar": False,
        "steps": 4000,
        "stopped_at": 1700,
        "best_step": 1200,
    }
    text = sources.report([row, stopped], "smollm2")
    assert "| sst2 | 600 (600) | 500 | 88.0 (872) | 2.2 | 70.0 | 73.0 | met | 87.0 | no |" in text
    assert "| mnli | 1700 (4000) | 1200 |" in text and "NOT met" in text


def test_stash_and_restore_carry_an_unfinished_run_to_another_session(sources, tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "STATE", tmp_path / "state")
    run = tmp_path / "sources" / "slug" / "qnli"
    (run / "checkpoint").mkdir(parents=True)
    (run / "checkpoint" / "state.json").write_text('{"step": 100}')
    (run / "metrics.jsonl").write_text("{}\n")
    (run / "library").mkdir()  # not part of the resumable state
    assert sources.stash(run) == tmp_path / "state" / "slug" / "qnli"
    assert sources.restore(run) is False  # the run still has its own checkpoint
    import shutil

    shutil.rmtree(run)
    assert sources.restore(run) is True
    assert (run / "checkpoint" / "state.json").read_text() == '{"step": 100}' and (
        run / "metrics.jsonl"
    ).is_file()
    assert not (run / "library").exists()
    assert sources.stash(tmp_path / "nothing") is None
