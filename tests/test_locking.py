"""Folder locks: a second writer of a run folder or a prompt library fails at once naming the holder's pid, and
the lock of a killed process never blocks a rerun."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from attempt import cli
from attempt.prompts.library import PromptLibrary, SourcePrompt
from attempt.testing import build_backbone, build_tokenizer
from attempt.training.loop import train
from attempt.utils import locking
from conftest import REPO
from test_train import make_config

HOLD = "import sys, time; from attempt.utils import locking; held = locking.locked(sys.argv[1], 'test'); held.__enter__(); print('held', flush=True); time.sleep(120)"


@pytest.fixture
def holder():
    """Start a process that holds the lock of a folder until killed; yields start(folder) -> Popen."""
    started: list[subprocess.Popen] = []

    def start(folder: Path) -> subprocess.Popen:
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        process = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True, env=env
        )
        started.append(process)
        assert process.stdout.readline().strip() == "held"
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_held_folder_is_refused_naming_the_holder(tmp_path, holder):
    process = holder(tmp_path / "run")
    assert locking.holder_pid(tmp_path / "run") == process.pid
    with (
        pytest.raises(locking.FolderInUse, match=rf"in use by process {process.pid}"),
        locking.locked(tmp_path / "run", "run folder"),
    ):
        pass


def test_the_lock_of_a_killed_process_does_not_block(tmp_path, holder):
    process = holder(tmp_path / "run")
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert (tmp_path / "run" / locking.LOCK_FILE).is_file()  # left behind, with a dead pid in it
    with locking.locked(tmp_path / "run", "run folder"):
        assert locking.holder_pid(tmp_path / "run") == os.getpid()
    assert not (tmp_path / "run" / locking.LOCK_FILE).exists()  # released: the folder is as it was


def test_a_second_training_run_on_the_same_folder_fails_at_once(tmp_path, data_dir, holder):
    config = make_config(tmp_path, data_dir)
    process = holder(Path(config.output_dir))
    started = time.time()
    with pytest.raises(
        locking.FolderInUse, match=rf"run folder .*run is in use by process {process.pid}.*another output_dir"
    ):
        train(
            config, backbone=build_backbone("seq2seq"), tokenizer=build_tokenizer("seq2seq"), progress=False
        )
    assert time.time() - started < 10
    assert sorted(p.name for p in Path(config.output_dir).iterdir()) == [locking.LOCK_FILE]  # nothing written


def test_the_cli_reports_a_locked_run_folder_in_one_line(tmp_path, holder, capsys):
    process = holder(tmp_path / "run")
    mirror = tmp_path / "mirror" / "nyu-mll" / "glue" / "rte"  # data the run can read, so the lock is next
    mirror.mkdir(parents=True)
    (mirror / "train.jsonl").write_text('{"sentence1": "a", "sentence2": "b", "label": 0, "idx": 0}\n')
    code = cli.main(["train", "--mode", "prompt_tuning", "--tasks", "rte", "--backbone",
                     str(tmp_path / "no-such-backbone"), "--output-dir", str(tmp_path / "run"), "--quiet",
                     "--data-dir", str(tmp_path / "mirror")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"in use by process {process.pid}" in err and "Traceback" not in err


def test_a_failed_run_leaves_no_empty_folder_behind(tmp_path, data_dir):
    # a prompt of another width d fails once the model is built, after the run folder was locked (a missing
    # prompt is refused earlier, before the folder is made: attempt.training.preflight)
    PromptLibrary(tmp_path / "lib").add(SourcePrompt("wide", torch.zeros(4, 16)))
    config = make_config(tmp_path, data_dir, tasks=("rte",), source_prompts=("wide",), mode="spot")
    with pytest.raises(ValueError, match="has d=16"):
        train(
            config, backbone=build_backbone("seq2seq"), tokenizer=build_tokenizer("seq2seq"), progress=False
        )
    assert not Path(config.output_dir).exists()


def test_library_writes_wait_for_the_holder_then_give_up(tmp_path, holder, monkeypatch):
    library = PromptLibrary(tmp_path / "lib")
    process = holder(library.root)
    monkeypatch.setattr("attempt.prompts.library.LOCK_WAIT_S", 0.3)
    prompt = SourcePrompt("mnli", torch.ones(2, 4))
    with pytest.raises(locking.FolderInUse, match=rf"prompt library .* in use by process {process.pid}"):
        library.add(prompt)
    assert library.names() == []
    process.kill()
    process.wait()
    library.add(prompt)
    library.rename("mnli", "mnli.v2")  # one lock around both files (re-entering it would wait on itself)
    assert library.names() == ["mnli.v2"]
    assert not (library.root / locking.LOCK_FILE).exists()
