"""benchmarks/cell_parallel.py: one process of two threads against two processes of one thread, here on the tiny
causal LM over the real mirror: the JSON it writes (the work each setup did, its ratio from the medians) and its
report rebuilt from the JSON alone."""

from __future__ import annotations

import json
import shutil
import statistics

import pytest

from benchmarks import cell_parallel


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("cell_parallel")
    argv = ["--tiny", "--repeats", "1", "--out", str(out), "--data-dir", str(data_dir)]
    assert cell_parallel.main(argv) == 0
    return out


@pytest.mark.slow
@pytest.mark.data
def test_the_tiny_benchmark_writes_the_work_of_each_setup_and_the_ratio_of_their_medians(tiny_run):
    results = json.loads((tiny_run / "cell_parallel-tiny-llama.json").read_text())
    assert list(results) == ["backbone", "command", "commit", "src_modified", "machine", "wall_s", "steps",
                             "rows", "repeats", "workloads"]  # fmt: skip
    assert results["command"].startswith("python -m benchmarks.cell_parallel --tiny --repeats 1 --out ")
    for workload, unit in cell_parallel.UNITS.items():
        timed = results["workloads"][workload]
        assert list(timed) == ["runs", "median_per_s", "ratio"]
        for setup, (processes, _) in cell_parallel.SETUPS.items():
            (run,) = timed["runs"][setup]  # one repeat
            assert len(run["process_s"]) == processes and run["work"] == results[unit] * processes
            assert max(run["process_s"]) <= run["wall_s"]  # the clock spans every process's work
            assert run["per_s"] == run["work"] / run["wall_s"]
        medians = [statistics.median(r["per_s"] for r in timed["runs"][s]) for s in cell_parallel.SETUPS]
        assert timed["ratio"] == medians[1] / medians[0]


@pytest.mark.slow
@pytest.mark.data
def test_the_report_is_rebuilt_from_the_json_alone(tiny_run, tmp_path):
    for name in ("cell_parallel-tiny-llama.json", "cell_parallel-tiny-llama.md"):
        shutil.copy(tiny_run / name, tmp_path / name)
    written = (tmp_path / "cell_parallel-tiny-llama.md").read_text()
    (tmp_path / "cell_parallel-tiny-llama.md").unlink()
    assert cell_parallel.main(["--tiny", "--report-only", "--out", str(tmp_path)]) == 0
    again = (tmp_path / "cell_parallel-tiny-llama.md").read_text()
    assert again == written
    assert "| training (steps) | two processes, 1 thread each |" in again and "## Verdict" in again
