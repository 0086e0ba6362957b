"""benchmarks/main_table.py run by several processes at once (scripts/background.sh starts two): a cell another
live process has claimed is skipped, a dead process's claim is taken over, no process loses another's record in
the cells file, and two processes together write the same cells, each run once, as one process alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import main_table
from benchmarks.common import REPO, read_records

TINY = main_table.Options(targets=("cb",), methods=("prompt_tuning",), tiny=True)


def _process(alive: bool) -> int:
    """The pid of another process: still running (ended by the test's end) or already ended."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)" if alive else "pass"])
    if not alive:
        child.wait()
    return child.pid


def _claimed_by(table: main_table.MainTable, seed: int, pid: int) -> Path:
    run = table.cells_folder(TINY.mixed_precision) / "prompt_tuning" / "cb" / f"s{seed}"
    run.mkdir(parents=True)
    (run / main_table.CLAIM).write_text(json.dumps({"pid": pid}))
    return run


def test_a_cell_another_live_process_has_claimed_is_skipped_without_training(tmp_path, data_dir):
    table = main_table.MainTable(TINY, tmp_path, data_dir, log=lambda *_: None)
    other = _process(alive=True)
    try:
        _claimed_by(table, 0, other)
        assert table.run_cell("prompt_tuning", "cb", 0, steps=2, compute=True) is None
        assert table.kept == {} and not (tmp_path / "cells-tiny-llama.jsonl").exists()
    finally:
        os.kill(other, 9)


def test_the_claim_of_a_process_that_ended_is_taken_over_and_counts_the_cells_running(tmp_path, data_dir):
    table = main_table.MainTable(TINY, tmp_path, data_dir)
    other = _process(alive=True)
    try:
        _claimed_by(table, 1, other)  # a live process runs seed 1
        run = _claimed_by(table, 0, _process(alive=False))  # seed 0's process ended (a crash)
        assert table.claim(run) == 2  # this one and seed 1's
        assert json.loads((run / main_table.CLAIM).read_text()) == {"pid": os.getpid()}
        assert table.claim(run) == 2  # its own claim again: still its own
    finally:
        os.kill(other, 9)


def test_two_processes_keeping_records_in_one_cells_file_lose_none(tmp_path, data_dir):
    first = main_table.MainTable(TINY, tmp_path, data_dir)
    second = main_table.MainTable(TINY, tmp_path, data_dir)  # read the file before `first` wrote to it
    first.keep({"kind": "spot_source", "task": "cb", "chosen": "mnli"})
    second.keep({"kind": "spot_source", "task": "rte", "chosen": "qnli"})
    first.keep({"kind": "spot_source", "task": "wic", "chosen": "qnli"})
    records = read_records(tmp_path / "cells-tiny-llama.jsonl")
    assert [(r["task"], r["chosen"]) for r in records] == [("cb", "mnli"), ("rte", "qnli"), ("wic", "qnli")]


@pytest.mark.slow
def test_two_processes_run_each_cell_once_and_write_the_scores_one_process_writes(tmp_path, data_dir):
    base = ["--tiny", "--data-dir", str(data_dir), "--targets", "cb", "--methods", "prompt_tuning", "lora",
            "--threads", "1"]  # fmt: skip
    assert main_table.main([*base, "--out", str(tmp_path / "one")]) == 0  # the pilot, then every cell
    alone = read_records(tmp_path / "one" / "cells-tiny-llama.jsonl")
    (tmp_path / "two").mkdir()  # the two processes start from the same pilot: cells only
    pilot = [r for r in alone if r["kind"] == "pilot"]
    (tmp_path / "two" / "cells-tiny-llama.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pilot))
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "benchmarks.main_table", *base, "--out", str(tmp_path / "two")]
    workers = [subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, text=True) for _ in "ab"]
    logs = [worker.communicate(timeout=600)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0]
    ran = [line.split("(")[0] for log in logs for line in log.splitlines() if line.startswith("run ")]
    cells = [r for r in alone if r["kind"] == "cell"]
    assert sorted(ran) == sorted(set(ran)) and len(ran) == len(cells)  # every cell run once, by one of them
    assert all("run " in log for log in logs)  # both took part

    def scores(records):
        return {(r["method"], r["seed"]): (r["test"], r["validation"], r["step0_average"])
                for r in records if r["kind"] == "cell"}  # fmt: skip

    together = read_records(tmp_path / "two" / "cells-tiny-llama.jsonl")
    assert scores(together) == scores(alone)
    assert {r["cells_at_once"] for r in together if r["kind"] == "cell"} <= {1, 2}
    assert {r["cells_at_once"] for r in cells} == {1}  # one process: one cell at a time
    assert {r["threads"] for r in together if r["kind"] == "cell"} == {1}
