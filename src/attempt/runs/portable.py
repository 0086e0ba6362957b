"""Run folders that can be moved: the paths a run records are relative to the run folder, not absolute.

``train_config.json`` (in the run folder, in ``best/`` and in ``checkpoint/``) stores ``output_dir``,
``library``, ``data_dir``, the data files of your own tasks' definitions and of ``data_files`` relative to the folder that holds the file (``output_dir`` is "." or ".."), so
a run copied to another folder or machine carries no path of the machine that trained it. `run_config`
reads such a file back and resolves the paths against where it is now; `attempt train --config
RUN/train_config.json` (resuming a run from its own config) does the same. A run folder moved away from its library still predicts:
``best/`` holds copies of its source prompts (`attempt.modeling.AttemptModel.save_pretrained`,
``include_sources=True``).

Configs written before this (absolute ``library``, ``output_dir`` as given) read back unchanged.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from attempt.config import TrainConfig
from attempt.tasks.data_files import with_paths
from attempt.tasks.user import with_data_paths

SAVED_RUN_DIRS = (
    ".",
    "..",
)  # the output_dir a saved config records: its own folder, or best/'s and checkpoint/'s parent
PATH_FIELDS = ("output_dir", "library", "data_dir")


def _relative(path: str, folder: Path) -> str:
    try:
        return os.path.relpath(Path(path).resolve(), folder)
    except ValueError:  # another drive (Windows): no relative path exists
        return str(Path(path).resolve())


def saved_config(config: TrainConfig, folder: str | Path | None = None) -> dict[str, Any]:
    """`config` as a file in `folder` (default: the run folder) records it: its paths relative to `folder`, so
    ``output_dir`` is "." in the run folder and ".." in ``best/`` and ``checkpoint/``."""
    folder = Path(config.output_dir if folder is None else folder).resolve()
    data = config.to_dict()
    for name in PATH_FIELDS:
        if data[name] is not None:
            data[name] = _relative(data[name], folder)
    data["task_definitions"] = with_data_paths(
        data.get("task_definitions"), lambda path: _relative(path, folder)
    )
    data["data_files"] = with_paths(data.get("data_files"), lambda path: _relative(path, folder))
    return data


def resolve_paths(data: dict[str, Any], folder: str | Path) -> dict[str, Any]:
    """The saved config `data` of a file in `folder` with its paths made absolute again; a config saved
    before paths were relative (its output_dir is not "." or "..") comes back as it is."""
    if data.get("output_dir") not in SAVED_RUN_DIRS:
        return dict(data)
    fields = dict(data)

    def absolute(value: Any) -> Any:  # a value that is no path is left for TrainConfig to refuse
        if not isinstance(value, str) or Path(value).is_absolute():
            return value
        return os.path.normpath(Path(folder).resolve() / value)

    for name in PATH_FIELDS:
        value = fields.get(name)
        if value is not None:
            fields[name] = absolute(value)
    fields["task_definitions"] = with_data_paths(fields.get("task_definitions"), absolute)
    fields["data_files"] = with_paths(fields.get("data_files"), absolute)
    return fields


def run_config(data: dict[str, Any], folder: str | Path) -> TrainConfig:
    """The TrainConfig a file in `folder` (a run folder or its ``best/``) saved as `data` (see `saved_config`).

    A recorded data_dir that is not there (the run moved without it) becomes None with a warning, so the
    data comes from ``ATTEMPT_DATA_DIR`` or the Hub; pass ``--data-dir`` to name another mirror.

    Raises:
        ValueError: `data` is not a valid TrainConfig (unknown keys, invalid values).
    """
    if not isinstance(data, dict):
        raise ValueError(
            f"The config saved in {folder} is no mapping of TrainConfig keys; restore it from a copy."
        )
    fields = resolve_paths(data, folder)
    data_dir = fields.get("data_dir")
    if isinstance(data_dir, str) and not Path(data_dir).is_dir():
        warnings.warn(
            f"{fields.get('output_dir', folder)} was trained on the data in {data_dir}, which is not there; reading "
            "ATTEMPT_DATA_DIR or the Hub instead (pass --data-dir to use another mirror).",
            stacklevel=2,
        )
        fields["data_dir"] = None
    return TrainConfig.from_dict(fields)


__all__ = ["PATH_FIELDS", "SAVED_RUN_DIRS", "resolve_paths", "run_config", "saved_config"]
