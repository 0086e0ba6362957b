"""Checks a training run passes before it loads its backbone: the folders it reads and writes, the names
it uses, and where each split of its data comes from. Each failure is one line that names the path or the
name and the fix.

Loading a backbone takes minutes and a run can take hours; a wrong path found after that (or, for an output
folder, after training) costs the whole run. The rows themselves (every label and column) are read and checked
next, by `attempt.training.loop` before it loads the backbone. What can only be checked with the backbone (a
prompt's width d against its embeddings) is checked when the model is built.
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path
from typing import Any

from attempt.config import TrainConfig
from attempt.data.sources import DATA_DIR_ENV, MissingSplitError, label_map, mirror_path, resolve_data_dir
from attempt.prompts.library import PromptLibrary
from attempt.tasks import Task, get_task
from attempt.tasks.data_files import SPLITS

SOURCE_MODES = ("attempt", "spot")  # the modes that read source prompts from the library


def check_before_training(config: TrainConfig) -> None:
    """Refuse a run whose output_dir, data_dir, tasks or source prompts cannot work (see the module docstring).
    mode="source"'s own prompt name and library are checked by `PromptLibrary.check_writable`. The run's own
    tasks are registered first (`TrainConfig.register_tasks`), so its tasks are known.

    Raises:
        NotADirectoryError, PermissionError: output_dir is (or lies under) a file, or cannot be written.
        FileNotFoundError: data_dir or a file of data_files does not exist; MissingSplitError (one) when it lacks
            a task's training split.
        ImportError: a split would come from the Hub, and ``datasets`` is not installed.
        ValueError: source prompts missing from the library, or an invalid prompt name; a label map
            (data_files labels, ``--labels``) for a task without files of yours or without label words, or
            onto a label the task does not have.
        attempt.tasks.UnknownTaskError: an unknown task.
        attempt.tasks.user.TaskFileError: a task of the run's own is named like a different registered one.
    """
    config.register_tasks()
    tasks = [get_task(name) for name in config.tasks]
    check_output_dir(Path(config.output_dir))
    check_own_files(config.data_files or {})
    check_label_maps(config.data_files or {}, tasks)
    own_all = {task for task, spec in (config.data_files or {}).items() if all(s in spec for s in SPLITS)}
    folder = resolve_data_dir(config.data_dir)
    if folder is not None:
        check_data_dir(folder, [task for task in tasks if task.name not in own_all])
    else:
        check_hub_reachable(config.data_files or {}, tasks)
    if config.mode in SOURCE_MODES:
        check_sources(config)


def check_output_dir(output_dir: Path) -> None:
    """output_dir must be a folder, or one this process can create: its first existing ancestor is a folder
    it can write in. Nothing is left behind (a run that fails before writing anything leaves no folder)."""
    existing = next(path for path in (output_dir, *output_dir.parents) if path.exists())
    if not existing.is_dir():
        what = "is a file" if existing == output_dir else f"lies under the file {existing}"
        raise NotADirectoryError(
            f"output_dir {output_dir} {what}, not a folder. Pick another output_dir (--output-dir DIR)."
        )
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise PermissionError(
            f"Cannot write to output_dir {output_dir} ({existing}: {error.strerror or error}). Pick a folder you "
            "can write to (--output-dir DIR)."
        ) from None


def check_own_files(data_files: dict[str, dict[str, str]]) -> None:
    """Every file of `TrainConfig.data_files` must exist (its rows are checked when they are read)."""
    for task, spec in data_files.items():
        for split in SPLITS:
            if split in spec and not Path(spec[split]).is_file():
                raise FileNotFoundError(f"data_files[{task!r}].{split}: no such file {spec[split]} "
                                        f"(--{split}-file {task}=FILE). Fix the path.")  # fmt: skip


def check_label_maps(data_files: dict[str, dict[str, Any]], tasks: list[Task]) -> None:
    """A task's label map (``labels`` in data_files, from ``--labels``) needs files of yours to apply to, and
    maps onto the task's labels (`attempt.data.sources.label_map`)."""
    for task in tasks:
        spec = data_files.get(task.name) or {}
        if not spec.get("labels"):
            continue
        if not task.data_files and not set(spec) & set(SPLITS):
            raise ValueError(f"--labels for task {task.name!r} maps the labels of your files, but it reads none: give "
                             "them with --train-file / --validation-file / --test-file, or drop --labels.")  # fmt: skip
        label_map(spec["labels"], task)


def check_hub_reachable(data_files: dict[str, dict[str, Any]], tasks: list[Task]) -> None:
    """Without a local mirror, the splits no file of yours gives come from the Hugging Face Hub, through the
    ``datasets`` package: refuse now, naming the options that give them otherwise, when it is not installed."""
    if importlib.util.find_spec("datasets") is not None:
        return
    for task in tasks:
        spec = data_files.get(task.name) or {}
        missing = [split for split in SPLITS if split not in spec]
        if task.data_files or not missing:  # a task file's own files, or all three splits yours
            continue
        prefix = f"{task.name}=" if len(tasks) > 1 else ""
        options = " ".join(f"--{split}-file {prefix}FILE" for split in missing)
        raise ImportError(
            f"Task {task.name!r}: its {', '.join(missing)} split(s) would come from the Hugging Face Hub, which needs "
            f"the 'datasets' package (not installed). Give them as files of yours ({options}), point --data-dir "
            f"(or ${DATA_DIR_ENV}) at a local mirror, or install it: pip install 'attempt-tuning[data]'."
        )


def check_data_dir(folder: Path, tasks: list[Task]) -> None:
    """A local mirror must exist and hold each task's training split (the other splits are read, and any
    missing one named, with the rows before the backbone loads)."""
    if not folder.is_dir():
        raise FileNotFoundError(
            f"data_dir {folder} does not exist (from data_dir, else ${DATA_DIR_ENV}). Point it at a local mirror "
            f"(<data_dir>/<hub_id>/<config>/<split>.jsonl), or unset data_dir and {DATA_DIR_ENV} to use the Hub."
        )
    for task in tasks:
        if task.data_files:  # a task file's own files: read from there, never from the mirror
            continue
        path = mirror_path(task, task.train_split, folder)
        if not path.is_file():
            raise MissingSplitError(
                f"Task {task.name!r}: data_dir {folder} has no training split {path}. Add the file, fix data_dir, "
                f"or unset data_dir and {DATA_DIR_ENV} to use the Hub."
            )


def check_sources(config: TrainConfig) -> None:
    """The source prompts an attempt/spot run names must be in its library (all of them when it names none,
    and then there must be some); a target_init_source must be one of them."""
    library = PromptLibrary(config.library)
    present = library.names()
    how = (
        f"Train them with `attempt train-source --tasks TASK --library {config.library}`, fix the names, or "
        "point --library at the library that has them."
    )
    if not present:
        state = "is empty" if library.root.is_dir() else "does not exist"
        raise ValueError(
            f"mode={config.mode!r} needs source prompts, but the library {library.root} {state}. {how}"
        )
    missing = [name for name in config.source_prompts if name not in library]  # `in` refuses an invalid name
    init = config.attempt_config().target_init_source
    if init is not None and init not in library and init not in missing:
        missing.append(init)
    if missing:
        raise ValueError(
            f"Source prompt(s) {', '.join(map(repr, missing))} are not in the library {library.root} (it has: "
            f"{', '.join(present)}). {how}"
        )
