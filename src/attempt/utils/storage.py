"""Writes that never leave a half-written file or folder behind: write to a temporary path, then rename."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from attempt.utils.reading import HASH_KEY, file_sha256


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; on success it replaces `path` in one rename.

    On an exception the temporary file is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the mode open() would
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_safetensors(
    path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
):
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary folder next to `path`; on success it becomes `path`.

    An existing `path` is replaced only after the new folder is complete (it is first moved aside, then
    deleted), so an interruption leaves either the old folder or the new one, never a mix.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_model_directory(
    directory: str | Path, config_name: str, meta: dict[str, Any], weights_name: str, state: dict[str, torch.Tensor],
    extra: Callable[[Path], None] | None = None,
) -> Path:  # fmt: skip
    """Write a saved-model folder (a JSON config and a safetensors file) as one atomic replacement.

    The config also records the sha256 of the weights file (``weights_sha256``), so that a load can tell a
    damaged or changed file from the one written here (`attempt.utils.reading.verify_model_directory`). `extra`, when
    given, writes more files into the new folder before it replaces the old one.
    """
    directory = Path(directory)
    with atomic_directory(directory) as tmp:
        write_safetensors(tmp / weights_name, state, metadata={"format": "pt"})
        write_json(tmp / config_name, {**meta, HASH_KEY: file_sha256(tmp / weights_name)})
        if extra is not None:
            extra(tmp)
    return directory
