"""The Accelerator a run trains on: a CPU, one GPU, or several processes with plain data parallel (DDP);
the sharding back-ends (FSDP, DeepSpeed, Megatron) are refused before anything is written."""

from __future__ import annotations

import os
from typing import Any

import torch

from attempt.config import TrainConfig
from attempt.runs.layout import RunLayout


def make_accelerator(config: TrainConfig):
    """The `accelerate.Accelerator` of a run: its mixed precision and gradient accumulation, DDP when launched
    with several processes (gloo on CPUs); refuses a precision the hardware lacks and sharded back-ends."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedDataParallelKwargs

    if config.mixed_precision == "fp16" and not torch.cuda.is_available():
        raise ValueError(
            "mixed_precision='fp16' needs a CUDA GPU. On a CPU use mixed_precision='bf16' or 'no'."
        )
    if config.mixed_precision == "bf16" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        raise ValueError("This GPU does not support bf16; use mixed_precision='fp16' or 'no'.")
    # Accelerate keeps one global state per process; a single-process caller (tests, notebooks) may train
    # again with another precision, so forget the previous one there.
    previous = AcceleratorState._shared_state.get("_mixed_precision")
    if (
        previous is not None
        and previous != config.mixed_precision
        and PartialState._shared_state.get("num_processes", 1) == 1
    ):
        AcceleratorState._reset_state()
    # several processes without a GPU (torchrun on CPUs): Accelerate only uses gloo when told cpu=True
    cpu = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
    accelerator = Accelerator(
        cpu=cpu,
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],  # multi-task heads
        log_with=list(config.report_to) or None,
        project_dir=str(RunLayout(config.output_dir).trackers),  # report_to's local files (TensorBoard's)
    )
    check_distributed_type(accelerator.distributed_type)
    check_trackers(config.report_to, accelerator.log_with)
    return accelerator


def check_trackers(requested: tuple[str, ...], started: list[Any]) -> None:
    """Accelerate skips a tracker whose package is missing without a word; a run asked to report to it
    must not train for hours unseen, so that is an error before anything is written."""
    missing = sorted(set(requested) - {"all"} - {str(getattr(t, "value", t)) for t in started})
    if missing:
        raise ValueError(
            f"report_to {', '.join(missing)}: not available here (its package is not installed). Install it "
            f"(pip install {' '.join(missing)}) or leave it out of report_to."
        )


SHARDED_TYPES = ("FSDP", "DEEPSPEED", "MEGATRON_LM")


def check_distributed_type(distributed_type: Any) -> None:
    """Refuse the sharding back-ends this loop does not handle yet, before anything is written.

    Checkpoints, `best/` and evaluation read the full trainable weights and optimizer state of the unwrapped
    model on each process; FSDP / DeepSpeed ZeRO shard them, so a run would save partial weights. One device,
    DDP (several processes, each with the whole model) and ``shard_backbone`` (the frozen backbone sharded by
    the loop itself, `attempt.training.sharding`) are supported.
    """
    name = getattr(distributed_type, "name", str(distributed_type))
    if name in SHARDED_TYPES:
        raise NotImplementedError(
            f"attempt.training.loop does not support {name} yet: its checkpoints and evaluation need the whole trainable "
            "weights on every process, which sharding splits. The trained part is small (the prompts and the "
            "attention module), so run plain data parallel instead: `accelerate launch --multi_gpu ...` or "
            "`torchrun --nproc_per_node N ...`, without --use_fsdp / --use_deepspeed; for a backbone one device "
            "cannot hold, add --shard-backbone (torch FSDP2 shards the frozen backbone alone)."
        )
