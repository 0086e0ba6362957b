"""What of a training run survives an interruption: the loop's position (`LoopState`), the checkpoint written
after every evaluation, and resuming from it.

Only the same run may resume: the same configuration (but for `RESUME_FREE_FIELDS`), the same source prompts
(by content hash) and the same global batch (batch_size × processes: the number of processes may change, e.g. a
1-process run resumed sharded on 2 with half the batch_size each); anything else is a `CheckpointMismatch`, never
a silent restart. A checkpoint interrupted inside its atomic swap is put back first (`attempt.runs.checkpoint.recover`).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from attempt.config import TrainConfig
from attempt.modeling.protocols import TrainableModel
from attempt.runs import checkpoint, layout
from attempt.runs.layout import RunLayout
from attempt.runs.portable import saved_config
from attempt.utils import reading, storage

# fields that do not change the trajectory of a run: a resumed run may differ in them. The library may move:
# the source prompts themselves are compared by content hash (`_check_same_sources`). Activation checkpointing
# recomputes the same activations (the same gradients: tests/test_gradient_checkpointing.py), so a run saved
# before its default (false) resumes with it on, and a sharded run (on) resumes on one process and back.
RESUME_FREE_FIELDS = ("output_dir", "data_dir", "eval_batch_size", "library", "report_to", "shard_backbone",
                      "log_every", "gradient_checkpointing")  # fmt: skip


class CheckpointMismatch(ValueError):
    """``output_dir/checkpoint`` belongs to a run with a different configuration."""


@dataclass
class LoopState:
    """The training loop's position; saved in every checkpoint."""

    step: int = 0  # optimizer steps done
    epoch: int = 0  # data epoch of the next batch
    batch_index: int = 0  # next global batch within the epoch
    sampler_seed: int = 0
    num_processes: int = 1
    best_score: float | None = None
    best_step: int | None = None
    best_metrics: dict[str, Any] = field(default_factory=dict)
    bad_evals: int = 0  # evaluations since the last improvement (early stopping)
    last_eval_step: int | None = None
    stopped_early: bool = False


# a field added to TrainConfig after a checkpoint was saved is missing from it: the run had the field's default
# (`eval_in_float32` since session 12: a float32-scored run saved before it resumes with it off)
FIELD_DEFAULTS = {
    f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING
}


def _check_same_run(saved: dict[str, Any], current: dict[str, Any], directory: Path) -> None:
    saved = {**{k: FIELD_DEFAULTS[k] for k in current if k not in saved and k in FIELD_DEFAULTS}, **saved}
    differs = sorted(
        k for k in set(saved) | set(current) if k not in RESUME_FREE_FIELDS and saved.get(k) != current.get(k)
    )
    if differs:
        detail = "; ".join(f"{k}: checkpoint {saved.get(k)!r} vs now {current.get(k)!r}" for k in differs)
        raise CheckpointMismatch(
            f"{directory} holds a checkpoint of a different run ({detail}). Pick another output_dir, or delete "
            f"{directory} to start this run afresh in the same folder."
        )


def source_hashes(model: TrainableModel) -> dict[str, str]:
    """{name: content hash} of the source prompts `model` mixes (none for the other modes)."""
    return {s["name"]: s["hash"] for s in getattr(model, "source_info", [])}


def _check_same_sources(
    saved: dict[str, str] | None, current: dict[str, str], library: str, directory: Path
) -> None:
    """Refuse to resume with source prompts other than those the checkpoint was trained with: a prompt
    retrained or replaced under the same name would silently change the rest of the run."""
    if saved is None or saved == current:  # None: a checkpoint written before the hashes were recorded
        return
    short = lambda h: f"{h[:19]}…" if h else "absent"  # noqa: E731
    detail = "; ".join(
        f"{name}: checkpoint {short(saved.get(name))} vs library {short(current.get(name))}"
        for name in sorted(set(saved) | set(current)) if saved.get(name) != current.get(name)
    )  # fmt: skip
    raise CheckpointMismatch(
        f"The source prompts in library {library} differ from those {directory} was trained with ({detail}). "
        f"Put the original prompts back in the library to resume, or delete {directory} to restart this run "
        "with the current ones."
    )


def resume_or_start(
    config: TrainConfig, accelerator: Any, model: TrainableModel, optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR,
) -> tuple[LoopState, bool]:  # fmt: skip
    """Restore weights, optimizer, schedule and random generators in place from ``output_dir/checkpoint``
    when there is one (same run required), else start the run folder (its ``train_config.json``); returns
    (loop state, resumed)."""
    config_dict = saved_config(config)
    run = RunLayout(config.output_dir)
    checkpoint_dir = run.checkpoint
    state = LoopState(sampler_seed=config.seed, num_processes=accelerator.num_processes)
    if accelerator.is_main_process:  # under the run lock: no other writer, so leftovers are from a killed one
        for folder in (checkpoint_dir, run.best):
            checkpoint.recover(folder)
    accelerator.wait_for_everyone()
    resumed = checkpoint_dir.exists()  # an incomplete folder is an error (checkpoint.load), not a restart
    if resumed:
        # Accelerate names a CPU process's device "cpu:0" when launched by torchrun, which torch.load cannot map to
        device = "cpu" if accelerator.device.type == "cpu" else accelerator.device
        saved = checkpoint.load(checkpoint_dir, map_location=device)
        loaded = _loop_state(saved["state"], checkpoint_dir)
        # compared as the checkpoint records it: paths relative to checkpoint/ (your tasks' data files too);
        # the batches are the same for the same global batch, on any number of processes
        _check_same_run(
            _global_batch(saved["config"], loaded.num_processes),
            _global_batch(saved_config(config, checkpoint_dir), accelerator.num_processes),
            checkpoint_dir,
        )
        missing, unexpected = model.load_state_dict(saved["weights"], strict=False)
        if unexpected or set(saved["weights"]) - set(model.state_dict()):
            raise CheckpointMismatch(f"{checkpoint_dir} has weights this model lacks: {unexpected}.")
        _check_same_sources(
            saved["manifest"].get("sources"), source_hashes(model), config.library, checkpoint_dir
        )
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        state = dataclasses.replace(loaded, num_processes=accelerator.num_processes)
        # one generator state per process that wrote it; a process it did not have takes the main one's
        rngs = saved["rng"]
        checkpoint.set_rng_state(
            rngs[accelerator.process_index if accelerator.process_index < len(rngs) else 0]
        )
    elif accelerator.is_main_process:
        run.root.mkdir(parents=True, exist_ok=True)
        storage.write_json(run.config, config_dict)
    if resumed and accelerator.is_main_process and not run.config.is_file():
        # deleted, as `check_saved_config` says to do with a damaged one: this same run's config, written anew
        storage.write_json(run.config, config_dict)
    return state, resumed


def check_saved_config(output_dir: str | Path) -> None:
    """Before a run resumes from its checkpoint, check that its ``train_config.json`` reads back (evaluate,
    predict and serve read it): a damaged one is refused naming the file and the fix, before the backbone
    loads, rather than left damaged by a run that trains on without reading it.

    Raises:
        attempt.utils.reading.CorruptFile: the file is not JSON or not a TrainConfig.
    """
    from attempt.runs.build import read_run_config

    run = RunLayout(output_dir)
    if not (run.checkpoint.is_dir() and run.config.is_file()):
        return
    fix = f"Delete it and run the same command again: the run resumes from {run.checkpoint} and rewrites it."
    with warnings.catch_warnings():  # only whether it reads: its data_dir is checked where the run reads data
        warnings.simplefilter("ignore")
        read_run_config(run.root, finished=False, fix=fix)


def _global_batch(config: dict[str, Any], processes: int) -> dict[str, Any]:
    """A saved config with its per-process batch_size replaced by the global batch: a run may resume on another
    number of processes when batch_size × processes is the same (`attempt.data.batching.BatchStream` cuts the
    same global batches)."""
    per_process = config.get("batch_size")
    rest = {key: value for key, value in config.items() if key != "batch_size"}
    return {
        **rest,
        "batch_size × processes": per_process * processes if isinstance(per_process, int) else None,
    }


def _loop_state(saved: Any, checkpoint_dir: Path) -> LoopState:
    """The LoopState saved in ``state.json``; a file that parses but does not hold one is damaged too."""
    try:
        return LoopState(**saved)
    except TypeError as error:
        raise reading.CorruptFile(
            f"{checkpoint_dir / layout.STATE_FILE} does not hold a training loop state ({error}). Delete "
            f"{checkpoint_dir} to restart this run from step 0."
        ) from None


def save_checkpoint(
    config: TrainConfig, accelerator: Any, model: TrainableModel, optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR, state: LoopState,
) -> None:  # fmt: skip
    """Write ``output_dir/checkpoint`` atomically (main process), with every process's random generators."""
    from accelerate.utils import gather_object

    rngs = gather_object([checkpoint.rng_state()])  # every process's generators, in process order
    if accelerator.is_main_process:
        checkpoint_dir = RunLayout(config.output_dir).checkpoint
        checkpoint.save(
            checkpoint_dir, weights=model.trainable_state_dict(), optimizer=optimizer.state_dict(),
            scheduler=scheduler.state_dict(), rng=rngs, state=dataclasses.asdict(state),
            config=saved_config(config, checkpoint_dir), sources=source_hashes(model),
        )  # fmt: skip
    accelerator.wait_for_everyone()
