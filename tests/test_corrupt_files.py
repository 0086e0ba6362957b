"""Damaged files of a run, its checkpoint or the prompt library: through the command line each is one line naming
the file and the way out (never a traceback), and weights whose bytes changed are caught by their recorded sha256
(folders saved before the hash was recorded still load)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from attempt import cli
from attempt.testing import build_backbone, build_tokenizer
from attempt.training.loop import train
from attempt.utils import reading
from test_train import add_sources, make_config

WEIGHTS = Path("best") / "attempt_model.safetensors"
MODEL_CONFIG = Path("best") / "attempt_config.json"


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data_dir) -> Path:
    """A finished ATTEMPT run (two library prompts) on a tiny T5 saved to a folder, so the CLI can reload it."""
    root = tmp_path_factory.mktemp("finished")
    backbone = root / "tiny-t5"
    build_backbone("seq2seq").save_pretrained(backbone)
    build_tokenizer("seq2seq").save_pretrained(backbone)
    add_sources(root / "lib")
    train(make_config(root, data_dir, mode="attempt", backbone=str(backbone)), progress=False)
    return root


@pytest.fixture
def run_copy(finished, tmp_path) -> Path:
    """A copy of the finished run, its library and its backbone (the recorded paths point at the copies)."""
    for name in ("tiny-t5", "lib", "run"):
        shutil.copytree(finished / name, tmp_path / name)
    for path in (tmp_path / "run" / "train_config.json", tmp_path / "run" / "best" / "train_config.json",
                 tmp_path / "run" / "checkpoint" / "train_config.json"):  # fmt: skip
        path.write_text(path.read_text().replace(str(finished), str(tmp_path)))
    return tmp_path / "run"


def one_line_error(capsys, *argv) -> str:
    """Run the CLI, expect exit code 2 and a single error line (besides progress bars); return it."""
    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.startswith("attempt ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def evaluate(capsys, run: Path, *options) -> str:
    return one_line_error(
        capsys, "evaluate", run, "--split", "validation", "--out", run.parent / "eval", *options
    )


def resume(capsys, run: Path) -> str:
    """`attempt train` again on the run (its own resolved config as the recipe): a resume."""
    return one_line_error(capsys, "train", "--config", run / "train_config.json", "--quiet")


# -------------------------------------------------------------------------------------- saved models
def drop_hash(run: Path) -> None:
    """Make best/ look saved before the weights' hash was recorded."""
    meta = json.loads((run / MODEL_CONFIG).read_text())
    assert meta.pop(reading.HASH_KEY).startswith("sha256:")
    (run / MODEL_CONFIG).write_text(json.dumps(meta))


@pytest.mark.parametrize("hashed", [True, False], ids=["hashed", "before-hashes"])
def test_truncated_weights_are_one_line_naming_the_file(run_copy, capsys, hashed):
    if not hashed:
        drop_hash(run_copy)
    path = run_copy / WEIGHTS
    os.truncate(path, path.stat().st_size // 2)
    err = evaluate(capsys, run_copy)
    assert str(path) in err and "train the run again" in err


def test_changed_weight_bytes_are_caught_by_the_recorded_hash(run_copy, capsys):
    path = run_copy / WEIGHTS
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # one bit of one value: still a valid file with finite values
    path.write_bytes(bytes(data))
    assert torch.isfinite(torch.cat([t.flatten() for t in load_file(str(path)).values()])).all()
    err = evaluate(capsys, run_copy)
    assert f"{path} has changed since it was written" in err


def test_a_model_saved_without_a_hash_still_loads_but_not_with_nan(run_copy, capsys):
    drop_hash(run_copy)
    assert (
        cli.main(["evaluate", str(run_copy), "--split", "validation", "--out", str(run_copy.parent / "eval")])
        == 0
    )
    weights = load_file(str(run_copy / WEIGHTS))
    weights["mixture.target_prompts"][0, 0, 0] = float("nan")
    save_file(weights, str(run_copy / WEIGHTS))
    capsys.readouterr()
    err = evaluate(capsys, run_copy)
    assert "holds NaN or infinite values (in mixture.target_prompts)" in err


@pytest.mark.parametrize(("name", "fix"), [
    (MODEL_CONFIG, "train the run again"),
    (Path("train_config.json"), "best/train_config.json is a copy of it"),
])  # fmt: skip
def test_garbled_json_of_a_run_is_one_line_naming_the_file(run_copy, capsys, name, fix):
    (run_copy / name).write_text('{"mode": "attempt", ')
    err = evaluate(capsys, run_copy)
    assert str(run_copy / name) in err and fix in err


@pytest.mark.parametrize("damage", ["truncate", "garble_json", "nan"])
@pytest.mark.parametrize("copies", [False, True], ids=["library", "best-sources"])
def test_a_damaged_library_prompt_is_one_line_saying_how_to_replace_it(run_copy, capsys, damage, copies):
    # the prompts come from the run's own copies in best/sources, or from the library named with --library
    lib = run_copy / "best" / "sources" if copies else run_copy.parent / "lib"
    if damage == "truncate":
        os.truncate(lib / "mnli.safetensors", 40)
    elif damage == "garble_json":
        (lib / "mnli.json").write_text("{")
    else:
        save_file({"prompt": torch.full((4, 32), float("nan"))}, str(lib / "mnli.safetensors"))
    err = evaluate(capsys, run_copy, *([] if copies else ["--library", lib]))
    assert f"{lib / 'mnli'}." in err and f"attempt prompts remove mnli --library {lib}" in err


# --------------------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize(
    "name", ["optimizer.pt", "scheduler.pt", "rng.pt", "trainable.safetensors", "state.json"]
)
@pytest.mark.parametrize("manifest", [True, False], ids=["hashed", "before-hashes"])
def test_a_damaged_checkpoint_file_is_one_line_saying_delete_to_restart(run_copy, capsys, name, manifest):
    path = run_copy / "checkpoint" / name
    if not manifest:  # a checkpoint written before the manifest: the file's own parser has to catch it
        (run_copy / "checkpoint" / "manifest.json").unlink()
    if name.endswith(".json"):
        path.write_text('{"step": 2, ')
    else:
        os.truncate(path, path.stat().st_size // 2)
    err = resume(capsys, run_copy)
    assert str(path) in err and "delete it to restart this run from step 0" in err


def test_a_state_file_that_is_no_loop_state_is_one_line(run_copy, capsys):
    (run_copy / "checkpoint" / "manifest.json").unlink()
    (run_copy / "checkpoint" / "state.json").write_text('{"steps": 2}')
    err = resume(capsys, run_copy)
    assert (
        "state.json does not hold a training loop state" in err and "to restart this run from step 0" in err
    )
