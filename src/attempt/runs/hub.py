"""Trained runs on the Hugging Face Hub: `attempt push` sends a run's ``best/``, and a pushed run is read back
as a run folder wherever one is named (`run_folder`).

A pushed run is a model repository holding what ``best/`` holds: the trained part (``attempt_config.json`` +
``attempt_model.safetensors``, or a baseline's own files), ``sources/`` (copies of the source prompts it mixes,
checked against the hashes the model recorded; taken from the run's library when ``best/`` has none),
``train_config.json`` (without the trainer's data_dir; its library is ``sources/``), ``environment.json`` and
``README.md``, a model card written again for the Hub (its metadata and the run's scores,
`attempt.runs.model_card`). Reading it back, the snapshot is copied as the
``best/`` of a run folder under ``$ATTEMPT_CACHE/hub-runs/`` (so `attempt evaluate` has somewhere to write),
and loading checks every file as it checks a local run's.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from attempt.modeling.base import SOURCES_DIR
from attempt.prompts.library import PromptLibrary
from attempt.runs.layout import CARD_FILE, CONFIG_FILE, ENVIRONMENT_FILE, RunLayout
from attempt.runs.model_card import environment, model_card
from attempt.utils import hub, storage
from attempt.utils.reading import read_json

HUB_RUNS_DIR = "hub-runs"  # under $ATTEMPT_CACHE: the run folders of pushed runs read back


def _cache_root() -> Path:
    """``$ATTEMPT_CACHE`` (default ``$XDG_CACHE_HOME/attempt`` or ``~/.cache/attempt``), as the backbones use."""
    root = os.environ.get("ATTEMPT_CACHE")
    if not root:
        root = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "attempt")
    return Path(root).expanduser()


def run_folder(location: str | os.PathLike) -> Path:
    """The run folder `location` names: a local path as it is; a run pushed by `attempt push`
    (``hf://owner/name[@revision]``, or ``owner/name`` when no such local folder exists) downloaded, its files
    copied as the ``best/`` of ``$ATTEMPT_CACHE/hub-runs/<owner>--<name>/<commit>/<name>/`` (once per commit).

    Raises:
        FileNotFoundError / OSError: the repository cannot be had (`attempt.utils.hub.download`).
    """
    repo = hub.parse_location(location)
    if repo is None:
        return Path(location)
    snapshot = hub.download(repo)
    run = RunLayout(
        _cache_root() / HUB_RUNS_DIR / repo.repo_id.replace("/", "--") / snapshot.name / repo.name
    )
    if not run.best.is_dir():
        with storage.atomic_directory(run.best) as tmp:  # the files themselves, not the cache's links to them
            shutil.copytree(snapshot, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".git*"))
    return run.root


def _source_files(config: Any, best: Path, recorded: list[dict[str, Any]]) -> dict[str, bytes]:
    """``sources/<name>.safetensors`` and ``.json`` of every source prompt the model records, from ``best/sources/``
    (else the run's library), each checked against the hash the model recorded."""
    library = PromptLibrary(best / SOURCES_DIR if (best / SOURCES_DIR).is_dir() else config.library)
    files = {}
    for info in recorded:
        prompt = library.get(info["name"])
        if prompt.hash != info["hash"]:
            raise ValueError(
                f"Source prompt {info['name']!r} in {library.root} is not the one {best} was trained with (its hash "
                "differs): put back the prompts it recorded, then push again."
            )
        tensor = library.root / f"{prompt.name}.safetensors"
        files[f"{SOURCES_DIR}/{tensor.name}"] = tensor.read_bytes()
        files[f"{SOURCES_DIR}/{prompt.name}.json"] = (
            json.dumps(prompt.metadata(), indent=2, sort_keys=True) + "\n"
        ).encode()
    return files


def _card(config: Any, run: RunLayout, recorded: list[dict[str, Any]], repo: str) -> str:
    """The run's model card for the Hub: its scores from ``results.json`` (when the run has one)."""
    fix = f"Restore {run.root}'s files from a copy, or train the run again."
    results = read_json(run.results, fix) if run.results.is_file() else {}
    record_path = run.best / ENVIRONMENT_FILE
    record = read_json(record_path, fix) if record_path.is_file() else environment(config, None)
    return model_card(config, record, recorded, results.get("validation") or {}, results.get("best_step"),
                      results.get("test"), repo=repo)  # fmt: skip


def run_files(run_dir: str | Path, repo: str) -> dict[str, Path | bytes]:
    """What `push_run` sends for the run folder `run_dir`: every file of its ``best/`` (the saved model checked
    first, as loading checks it), its source prompts under ``sources/`` and the Hub model card as README.md.

    Raises:
        FileNotFoundError: not a finished run. attempt.utils.reading.CorruptFile / ValueError: a damaged saved
            model, or a source prompt that is missing or not the one the model recorded.
    """
    from attempt.runs.build import read_run_config, verify_saved_model

    run = RunLayout(run_dir)
    config = read_run_config(run.root)
    config.register_tasks()  # the card names the run's own tasks
    meta = verify_saved_model(config, run.best)
    recorded = meta.get("source_prompts") or []
    files: dict[str, Path | bytes] = {
        path.relative_to(run.best).as_posix(): path
        for path in sorted(run.best.rglob("*"))
        if path.is_file()
        and not path.name.startswith(".")
        and path.relative_to(run.best).parts[0] != SOURCES_DIR
    }
    files.update(_source_files(config, run.best, recorded))
    files[CONFIG_FILE] = _portable_config(run)
    files[CARD_FILE] = _card(config, run, recorded, hub.check_push_target(repo)).encode()
    return files


def _portable_config(run: RunLayout) -> bytes:
    """``best/train_config.json`` as pushed: no path of the machine that trained it (no data_dir), the library
    its own ``sources/`` (paths in it are relative to ``best/``, `attempt.runs.portable`)."""
    data = read_json(run.best_config, f"Restore {run.best_config} from a copy, or train the run again.")
    data.update(data_dir=None, library=SOURCES_DIR)
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def push_run(
    run_dir: str | Path, repo: str, private: bool = False, message: str | None = None
) -> dict[str, Any]:
    """Push the finished run `run_dir`'s ``best/`` to the Hub model repository `repo` (``owner/name``), which then
    holds exactly `run_files` (`attempt.utils.hub.upload`); returns what `upload` returns."""
    repo_id = hub.check_push_target(repo)
    files = run_files(run_dir, repo_id)
    return hub.upload(repo_id, files, message or f"attempt push {Path(run_dir).name}", private=private)


__all__ = ["HUB_RUNS_DIR", "push_run", "run_files", "run_folder"]
