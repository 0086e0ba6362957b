"""What a training run is assembled from, given its `TrainConfig`: the model (ATTEMPT, prompt tuning, SPoT, or a
fine-tuning / LoRA baseline), the Accelerator it runs on, and the learning-rate schedule.

`attempt.train.train` calls these; `build_model` is also the way to get an untrained model of a config.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from attempt.config import TrainConfig
from attempt.prompts import PromptLibrary, SourcePrompt
from attempt.tasks import get_task


def _sources(config: TrainConfig, hidden_size: int) -> list[SourcePrompt]:
    if config.mode not in ("attempt", "spot"):
        return []
    library = PromptLibrary(config.library)
    names = list(config.source_prompts) or None
    prompts = library.load(names, hidden_size=hidden_size)
    if not prompts:
        raise ValueError(
            f"mode={config.mode!r} needs source prompts but the library {config.library} has none. "
            "Train some first with mode='source' (one run per source task)."
        )
    return prompts


def build_model(config: TrainConfig, backbone: torch.nn.Module, tokenizer: Any, family: str) -> torch.nn.Module:
    """The model of `config.mode` over `backbone` (AttemptModel, or FineTuneModel for finetune/lora)."""
    labels = {t: get_task(t).num_labels for t in config.tasks}
    if family == "encoder":
        no_head = [t for t, n in labels.items() if n == 0]
        if no_head:
            raise ValueError(f"Task(s) {no_head} are extractive QA; an encoder backbone with a head cannot learn them.")
    if config.mode in ("finetune", "lora"):
        from attempt.baselines import FineTuneModel

        return FineTuneModel.from_backbone(
            backbone, mode=config.mode, tasks=list(config.tasks), num_labels=labels if family == "encoder" else None,
            lora_rank=config.lora_rank, lora_alpha=config.lora_alpha, backbone_name=config.backbone, seed=config.seed,
        )  # fmt: skip
    from attempt.modeling import AttemptModel

    attempt_config = config.attempt_config()
    if family == "encoder" and attempt_config.num_labels is None:
        attempt_config = dataclasses.replace(attempt_config, num_labels=labels)
    hidden_size = backbone.get_input_embeddings().weight.shape[1]
    return AttemptModel.from_backbone(
        backbone, source_prompts=_sources(config, hidden_size), config=attempt_config, tokenizer=tokenizer,
        backbone_name=config.backbone,
    )  # fmt: skip


def load_best_weights(config: TrainConfig, model: torch.nn.Module, best_dir: Path) -> None:
    """Put the weights saved in ``best/`` back into the trained model (in place, before the test evaluation)."""
    if config.mode in ("finetune", "lora"):
        from attempt.baselines import WEIGHTS_FILE
    else:
        from attempt.modeling.base import WEIGHTS_FILE
    state = load_file(str(best_dir / WEIGHTS_FILE), device=str(next(model.parameters()).device))
    _, unexpected = model.load_state_dict(state, strict=False)
    if unexpected:
        raise ValueError(f"{best_dir} holds weights this model lacks: {unexpected}.")


def linear_schedule(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def make_accelerator(config: TrainConfig):
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DistributedDataParallelKwargs

    if config.mixed_precision == "fp16" and not torch.cuda.is_available():
        raise ValueError("mixed_precision='fp16' needs a CUDA GPU. On a CPU use mixed_precision='bf16' or 'no'.")
    if config.mixed_precision == "bf16" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        raise ValueError("This GPU does not support bf16; use mixed_precision='fp16' or 'no'.")
    # Accelerate keeps one global state per process; a single-process caller (tests, notebooks) may train
    # again with another precision, so forget the previous one there.
    previous = AcceleratorState._shared_state.get("_mixed_precision")
    if previous is not None and previous != config.mixed_precision and PartialState._shared_state.get("num_processes", 1) == 1:
        AcceleratorState._reset_state()
    # several processes without a GPU (torchrun on CPUs): Accelerate only uses gloo when told cpu=True
    cpu = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
    accelerator = Accelerator(
        cpu=cpu,
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],  # multi-task heads
    )
    check_distributed_type(accelerator.distributed_type)
    return accelerator


SHARDED_TYPES = ("FSDP", "DEEPSPEED", "MEGATRON_LM")


def check_distributed_type(distributed_type: Any) -> None:
    """Refuse the sharding back-ends this loop does not handle yet, before anything is written.

    Checkpoints, `best/` and evaluation read the full trainable weights and optimizer state of the unwrapped
    model on each process; FSDP / DeepSpeed ZeRO shard them, so a run would save partial weights. One device
    and DDP (several processes, each with the whole model) are supported.
    """
    name = getattr(distributed_type, "name", str(distributed_type))
    if name in SHARDED_TYPES:
        raise NotImplementedError(
            f"attempt.train does not support {name} yet: its checkpoints and evaluation need the whole trainable "
            "weights on every process, which sharding splits. The trained part is small (the prompts and the "
            "attention module), so run plain data parallel instead: `accelerate launch --multi_gpu ...` or "
            "`torchrun --nproc_per_node N ...`, without --use_fsdp / --use_deepspeed."
        )
