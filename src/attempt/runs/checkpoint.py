"""Resumable training checkpoints: everything needed to continue a run bit for bit.

``<output_dir>/checkpoint/`` holds (the names are `attempt.runs.layout`'s)

- ``trainable.safetensors``: the trainable weights (``model.trainable_state_dict()``);
- ``optimizer.pt`` and ``scheduler.pt``: their ``state_dict()``;
- ``rng.pt``: the Python, NumPy, torch (and CUDA) generator states of every process;
- ``state.json``: step, data position (epoch, batch index, sampler seed), best-so-far, patience counter,
  number of processes;
- ``train_config.json``: the run's TrainConfig, to refuse resuming a different run;
- ``manifest.json``: the content hashes of the source prompts the model mixes, to refuse resuming with
  other prompts under the same names, and the sha256 of every file above, to refuse a damaged one (absent
  from checkpoints written before it existed, which load unchecked).

The folder is written to a temporary sibling and renamed into place (`attempt.utils.storage.atomic_directory`),
so an interrupted write leaves the previous checkpoint intact; `recover` puts it back in place when the
interruption fell between the two renames of that swap, and removes the unfinished temporary folders. A
checkpoint folder that lacks a file is an error (`load`), never a silent restart from step 0. A write that fails
(a full disk) is one `CheckpointWriteFailed` line: the previous checkpoint is kept, and how to resume. Every file
loads with ``torch.load(weights_only=True)``: RNG states are stored as tensors and plain Python values.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from attempt.runs import layout
from attempt.utils import reading, storage


class IncompleteCheckpoint(FileNotFoundError):
    """A checkpoint folder lacks one of its files; the message says how to restart."""


def rng_state() -> dict[str, Any]:
    """This process's generator states, in a form `torch.load(weights_only=True)` accepts."""
    version, keys, gauss = random.getstate()
    name, np_keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, torch.tensor(keys, dtype=torch.int64), gauss],
        "numpy": [name, torch.from_numpy(np_keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore generator states captured by `rng_state`."""
    version, keys, gauss = state["python"]
    random.setstate((version, tuple(keys.tolist()), gauss))
    name, np_keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np_keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(
    directory: str | Path,
    *,
    weights: dict[str, torch.Tensor],
    optimizer: dict[str, Any],
    scheduler: dict[str, Any],
    rng: list[dict[str, Any]],
    state: dict[str, Any],
    config: dict[str, Any],
    sources: dict[str, str] | None = None,
) -> Path:
    """Write a checkpoint folder atomically (call on the main process only).

    Args:
        directory: the checkpoint folder (replaced only once the new one is complete).
        weights: trainable tensors.
        optimizer, scheduler: their state dicts.
        rng: one `rng_state()` per process, in process order.
        state: JSON-serialisable loop state (step, epoch, batch_index, best, patience, ...).
        config: the TrainConfig as a dict.
        sources: ``{name: content hash}`` of the source prompts the model mixes.
    """
    directory = Path(directory)
    with _one_line_when_the_write_fails(directory), storage.atomic_directory(directory) as tmp:
        storage.write_safetensors(tmp / layout.CHECKPOINT_WEIGHTS_FILE, weights, metadata={"format": "pt"})
        _torch_save(optimizer, tmp / layout.OPTIMIZER_FILE)
        _torch_save(scheduler, tmp / layout.SCHEDULER_FILE)
        _torch_save(rng, tmp / layout.RNG_FILE)
        storage.write_json(tmp / layout.STATE_FILE, state)
        storage.write_json(tmp / layout.CONFIG_FILE, config)
        hashes = {name: reading.file_sha256(tmp / name) for name in layout.CHECKPOINT_FILES}
        storage.write_json(tmp / layout.MANIFEST_FILE, {"sources": dict(sources or {}), "sha256": hashes})
    return directory


def _torch_save(obj: Any, path: Path) -> None:
    """torch.save through a Python file, so a full disk is an OSError (ENOSPC) behind torch's RuntimeError
    ("iostream error"), not a RuntimeError alone."""
    with open(path, "wb") as handle:
        torch.save(obj, handle)


class CheckpointWriteFailed(OSError):
    """A checkpoint could not be written (a full disk, most often); the previous one is kept."""


@contextlib.contextmanager
def _one_line_when_the_write_fails(directory: Path) -> Iterator[None]:
    """Turn a failed write of `directory` (the atomic write has removed its partial folder by then) into one line
    with the fix. A full disk reaches here as an OSError, a SafetensorError or a RuntimeError of torch.save's zip
    writer, none with a message that says what to do."""
    try:
        yield
    except Exception as error:  # noqa: BLE001 - re-raised below unless it is a failed write
        detail = _write_failure(error)
        if detail is None:
            raise
        kept = (
            "the previous checkpoint is kept: run the same command again to resume from it"
            if exists(directory)
            else "no checkpoint had been written yet: run the same command again to start over"
        )
        raise CheckpointWriteFailed(
            f"Could not write the checkpoint {directory} ({detail}); {kept} once there is room (free disk space, "
            "or move output_dir to a larger disk) or the disk works again."
        ) from None


def _write_failure(error: BaseException) -> str | None:
    """What went wrong when `error` is a failed file write (its causes included), else None."""
    cause: BaseException | None = error
    while cause is not None:
        full = isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT)
        if full or "No space left on device" in str(cause):
            return "no space left on the device"
        cause = cause.__cause__ or cause.__context__
    text = " ".join(str(error).split())[:200]
    if isinstance(error, OSError):
        return text
    torch_writer = "inline_container" in text or "iostream error" in text  # torch.save's zip writer
    if type(error).__name__ == "SafetensorError" or torch_writer:
        return f"{text}; is the disk full?"
    return None


def exists(directory: str | Path) -> bool:
    """True when `directory` holds a complete checkpoint."""
    directory = Path(directory)
    return all((directory / name).is_file() for name in layout.CHECKPOINT_FILES)


def recover(directory: str | Path) -> None:
    """Undo what an interrupted `save` (or `attempt.utils.storage.atomic_directory`) of `directory` left behind.

    Call on the main process while holding the run folder's lock (no writer can be at work): a kill between
    the two renames of the swap leaves only ``.<name>.old`` (the previous, complete folder), which is moved
    back; a kill after them leaves both, and ``.<name>.old`` is deleted; unfinished ``.<name>.*.tmp`` folders
    are deleted.
    """
    directory = Path(directory)
    for tmp in directory.parent.glob(f".{directory.name}.*.tmp"):
        shutil.rmtree(tmp, ignore_errors=True)
    old = directory.with_name(f".{directory.name}.old")
    if old.is_dir():
        if directory.exists():
            shutil.rmtree(old)
        else:
            os.replace(old, directory)


def check_complete(directory: str | Path) -> None:
    """Raise `IncompleteCheckpoint` naming the first file `directory` lacks."""
    directory = Path(directory)
    missing = [name for name in layout.CHECKPOINT_FILES if not (directory / name).is_file()]
    if missing:
        raise IncompleteCheckpoint(
            f"The checkpoint {directory} is incomplete: it has no {', '.join(missing)}. Delete {directory} to "
            "restart this run from step 0 (or restore the missing file)."
        )


def load(directory: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint folder: ``{"weights", "optimizer", "scheduler", "rng", "state", "config", "manifest"}``
    (``manifest`` is ``{}`` for a checkpoint written before manifests existed)."""
    directory = Path(directory)
    check_complete(directory)
    fix = (
        f"The checkpoint {directory} is damaged: delete it to restart this run from step 0 "
        f"({layout.METRICS_FILE} is kept)."
    )
    manifest = (
        reading.read_json(directory / layout.MANIFEST_FILE, fix)
        if (directory / layout.MANIFEST_FILE).is_file()
        else {}
    )
    hashes = manifest.get("sha256", {}) if isinstance(manifest, dict) else {}
    for name in layout.CHECKPOINT_FILES:
        reading.check_sha256(directory / name, hashes.get(name), fix)
    return {
        "manifest": manifest,
        "weights": reading.load_safetensors(directory / layout.CHECKPOINT_WEIGHTS_FILE, fix),
        "optimizer": reading.torch_load(directory / layout.OPTIMIZER_FILE, fix, map_location=map_location),
        "scheduler": reading.torch_load(directory / layout.SCHEDULER_FILE, fix),
        "rng": reading.torch_load(directory / layout.RNG_FILE, fix),
        "state": reading.read_json(directory / layout.STATE_FILE, fix),
        "config": reading.read_json(directory / layout.CONFIG_FILE, fix),
    }
