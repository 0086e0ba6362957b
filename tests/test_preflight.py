"""A run with a wrong path or name is refused before its backbone loads, in one line naming the path or name."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from attempt.backbones import resolve
from attempt.cli import main
from attempt.config import TrainConfig
from attempt.data.sources import MissingSplitError
from attempt.prompts.library import PromptLibrary, SourcePrompt
from attempt.training.loop import train


@pytest.fixture(autouse=True)
def no_backbone(monkeypatch):
    """Every case here must fail before a backbone is loaded."""

    def refuse(*args, **kwargs):
        raise AssertionError("the backbone was loaded before the run was checked")

    monkeypatch.setattr(resolve, "load_backbone", refuse)


def _config(tmp_path: Path, mirror: Path, **overrides) -> TrainConfig:
    library = PromptLibrary(tmp_path / "lib")
    if not (tmp_path / "lib").exists():
        library.add(SourcePrompt("mnli", torch.zeros(4, 32), task="mnli"))
    fields = dict(mode="attempt", backbone="tiny-t5", tasks=("rte",), library=str(tmp_path / "lib"),
                  output_dir=str(tmp_path / "run"), data_dir=str(mirror), max_steps=1)  # fmt: skip
    return TrainConfig(**{**fields, **overrides})


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"output_dir": "{tmp}/afile"}, NotADirectoryError, r"output_dir .*afile is a file, not a folder"),
        ({"output_dir": "{tmp}/afile/run"}, NotADirectoryError, r"output_dir .*afile/run lies under the file .*afile,"),
        ({"source_prompts": ("mnli", "nope")}, ValueError,
         r"Source prompt\(s\) 'nope' are not in the library .*lib \(it has: mnli\)\. Train them"),
        ({"mode": "spot", "source_prompts": ("qnli",)}, ValueError, r"Source prompt\(s\) 'qnli' are not in the library"),
        ({"source_prompts": ("../x",)}, ValueError, r"Invalid prompt name '\.\./x'"),
        ({"library": "{tmp}/none"}, ValueError, r"mode='attempt' needs source prompts, but the library .*none does not exist"),
        ({"attempt": {"target_init_source": "sst2"}}, ValueError, r"Source prompt\(s\) 'sst2' are not in the library"),
        ({"data_dir": "{tmp}/no-mirror"}, FileNotFoundError, r"data_dir .*no-mirror does not exist"),
        ({"tasks": ("cb",)}, MissingSplitError, r"Task 'cb': data_dir .* has no training split .*super_glue/cb/train"),
    ],
)  # fmt: skip
def test_a_wrong_path_or_name_is_refused_before_the_backbone_loads(tmp_path, overrides, error, message):
    (tmp_path / "afile").write_text("")
    (tmp_path / "mirror/nyu-mll/glue/rte").mkdir(parents=True)
    (tmp_path / "mirror/nyu-mll/glue/rte/train.jsonl").write_text("")
    overrides = {k: v.format(tmp=tmp_path) if isinstance(v, str) else v for k, v in overrides.items()}
    with pytest.raises(error, match=message):
        train(_config(tmp_path, tmp_path / "mirror", **overrides), progress=False)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_an_unwritable_output_dir_is_refused_before_the_backbone_loads(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match=r"Cannot write to output_dir .*locked/run"):
            train(_config(tmp_path, tmp_path, output_dir=str(locked / "run")), progress=False)
    finally:
        locked.chmod(0o700)


def test_the_command_line_prints_one_line(tmp_path, capsys):
    _config(tmp_path, tmp_path)  # the library with mnli
    code = main(["train", "--tasks", "rte", "--source-prompts", "mnli", "qnli", "--library", str(tmp_path / "lib"),
                 "--output-dir", str(tmp_path / "run"), "--data-dir", str(tmp_path / "nowhere")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "data_dir" in err and "does not exist" in err, err
