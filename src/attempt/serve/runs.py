"""Loading the run folders a server answers for: one frozen backbone, one trained mixture per run folder.

Every run folder keeps its own AttemptModel (target prompts, attention, heads) over the SAME backbone module:
the backbone is loaded once and handed to `attempt.runs.build.load_run` for each folder, so N run folders cost
one backbone in memory, not N. Before anything heavy is loaded the recorded configs are checked: the same
backbone (and dtype) for every folder, prompt-based runs only, and distinct folder names (a request names
the folder when several answer its task, e.g. the quickstart's attempt-cb and prompt_tuning-cb).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from attempt.data.collate import Collator
from attempt.tasks import Task, get_task

# finetune / LoRA runs change the backbone itself, so they cannot share one frozen backbone with other runs
SERVABLE_MODES = ("attempt", "prompt_tuning", "spot", "source")


@dataclasses.dataclass
class ServedRun:
    """One run folder, loaded: its model (over the shared backbone), config and collator.

    Attributes:
        name: the folder's name, as shown by the API.
        run_dir: the folder.
        model: its AttemptModel, in eval mode.
        config: its TrainConfig.
        collator: a Collator over the shared tokenizer, without the text cache (a server sees unbounded
            distinct texts; the cache would grow forever).
        method: "rank" or "generate" for classification on LM backbones.
    """

    name: str
    run_dir: Path
    model: Any
    config: Any
    collator: Collator
    method: str

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.model.tasks)

    def uses_rank(self, task: Task) -> bool:
        """Whether `task` is answered by rank classification (else generation, or the encoder's head)."""
        return self.method == "rank" and task.is_classification and self.model.family != "encoder"

    def attention_names(self) -> list[str] | None:
        """The columns of the mixture's attention weights ([sources..., "target"]), None without attention."""
        mixture = self.model.mixture
        if not mixture.uses_attention:
            return None
        return list(mixture.source_names) + (["target"] if mixture.config.target_in_attention else [])


@dataclasses.dataclass
class ServedRuns:
    """Every loaded run folder over one backbone, and which one answers each task."""

    runs: list[ServedRun]
    tokenizer: Any
    backbone_name: str
    family: str

    def runs_of(self, task_name: str) -> list[ServedRun]:
        """The runs that answer `task_name` (any spelling `get_task` accepts); empty when none does."""
        try:
            name = get_task(task_name).name
        except KeyError:
            return []
        return [run for run in self.runs if name in run.tasks]

    @property
    def tasks(self) -> list[str]:
        """Every served task once, in the order of the run folders."""
        return list(dict.fromkeys(task for run in self.runs for task in run.tasks))


def _same_backbone_key(config: Any) -> tuple[str, str | None]:
    recorded = Path(config.backbone).expanduser()
    name = str(recorded.resolve()) if recorded.exists() else config.backbone  # paths compare by location
    return name, config.backbone_dtype


def check_runs(run_dirs: Sequence[Path], configs: Sequence[Any]) -> None:
    """Refuse, before loading anything, what one server over one backbone cannot answer."""
    for run_dir, config in zip(run_dirs, configs, strict=True):
        if config.mode not in SERVABLE_MODES:
            raise ValueError(
                f"{run_dir} is a mode={config.mode!r} run: it changed the backbone, so it cannot share one frozen "
                f"backbone. `attempt serve` serves {', '.join(SERVABLE_MODES)} runs; use `attempt predict` for it."
            )
    keys = {_same_backbone_key(config) for config in configs}
    if len(keys) > 1:
        listed = "; ".join(
            f"{d} → {c.backbone} (dtype {c.backbone_dtype or 'default'})"
            for d, c in zip(run_dirs, configs, strict=True)
        )
        raise ValueError(
            f"These runs were trained on different backbones ({listed}). One server shares one frozen backbone: "
            "start one `attempt serve` per backbone."
        )
    seen: dict[str, Path] = {}
    for run_dir in run_dirs:
        if run_dir.name in seen:
            raise ValueError(
                f"{seen[run_dir.name]} and {run_dir} are both named {run_dir.name!r}; a request picks a run by its "
                "folder name, so serve folders with distinct names (rename or symlink one)."
            )
        seen[run_dir.name] = run_dir


def load_runs(
    run_dirs: Sequence[str | Path], *, backbone: str | None = None, method: str | None = None,
    **placement: Any,
) -> ServedRuns:  # fmt: skip
    """Load the backbone once and every run folder's trained part onto it.

    Args:
        run_dirs: output_dirs of `attempt train` (a multi-task run brings all of its tasks), or runs pushed to the
            Hub (`attempt.runs.hub.run_folder`).
        backbone: load the backbone from here instead of the path recorded in the runs (moved folders).
        method: "rank" or "generate" for every run (default: each run's eval_method).
        placement: `attempt.backbones.resolve.load_backbone`'s device_map, max_memory and offload_folder, for a
            backbone larger than one device.

    Raises:
        FileNotFoundError: a folder is not a finished run. ValueError: different backbones, a finetune/LoRA
        run, or two folders of the same name.
    """
    from attempt.backbones.resolve import load_backbone
    from attempt.runs.build import load_run, read_run_config
    from attempt.runs.hub import run_folder

    if not run_dirs:
        raise ValueError("Name at least one run folder: attempt serve RUN_DIR [RUN_DIR ...].")
    dirs = [run_folder(d) for d in run_dirs]  # a run pushed to the Hub (hf://owner/name): downloaded
    # each config read once (load_run gets it); a folder without best/ is refused when its model loads
    configs = [read_run_config(d, finished=False) for d in dirs]
    check_runs(dirs, configs)
    first = configs[0]
    shared, tokenizer, family = load_backbone(
        backbone or first.backbone, dtype=first.backbone_dtype, **placement
    )
    runs = []
    for run_dir, recorded in zip(dirs, configs, strict=True):
        model, _, config = load_run(run_dir, backbone=shared, tokenizer=tokenizer, config=recorded)
        collator = Collator(
            tokenizer,
            model.family,
            model.tasks,
            config.max_source_length,
            config.max_target_length,
            cache=False,
        )
        runs.append(ServedRun(run_dir.name, run_dir, model, config, collator, method or recorded.eval_method))
    return ServedRuns(runs, tokenizer, first.backbone, family)
