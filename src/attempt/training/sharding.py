"""What a run over several processes needs beyond Accelerate's data parallel: a frozen backbone sharded across
the processes (torch FSDP2) when one device cannot hold it, the trainable part's gradients averaged by hand, and
a run folder that every process sees.

`--shard-backbone` (``TrainConfig.shard_backbone``) shards the backbone with ``fully_shard``: each transformer
block (the model's ``_no_split_modules``) is one unit, then the stacks the library calls on their own (a seq2seq
encoder and decoder, an encoder's ``base_model``), then the whole backbone. The input embedding stays whole on
every process (``ignored_params``): the prompt is mixed from the embedded input and prepended before the
backbone runs. Each process then holds about 1/N of every other backbone weight and gathers one block at a
time. The prompts, the attention and the heads are not sharded: they are small, every process holds them whole
and `average_gradients` averages their gradients once per optimizer step (DDP would, but DDP cannot wrap a
module that holds sharded weights). Checkpoints and saved models hold the trainable part only, so they are the
same files as an unsharded run's.

Loading sharded from the start (`shard_from_main`, what `attempt.training.loop.train` does when it loads the
backbone by name with ``shard_backbone``): process 0 reads the weights, the others build the backbone on the
meta device (no memory), every process shards it, and process 0's weights are broadcast one tensor at a time
into every process's shards (torch's ``set_model_state_dict(..., broadcast_from_rank0=True)``). So only
process 0 ever holds the whole backbone (in host memory, while it loads), in the dtype asked for
(``backbone_dtype``); the trainable part is built in float32 as always.

Why torch's ``fully_shard`` and not Accelerate's FSDP plugin: Accelerate runs FSDP on GPUs only and shards the
whole model, trainable part included, which the checkpoints and evaluation of `attempt.training.loop` read whole.
"""

from __future__ import annotations

import secrets
import socket
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from attempt.utils import storage

SHARED_WAIT_S = 5.0  # how long a process waits to see the main process's file (network filesystems lag)
PROBE_PREFIX = ".attempt-shared-"  # the file that checks output_dir is shared; removed at once


class FolderNotShared(OSError):
    """A run's output_dir is not the same folder for all of its processes (a disk local to one machine)."""


def shard_if_asked(config: Any, accelerator: Any, model: nn.Module) -> bool:
    """Shard ``model.backbone`` across the run's processes when ``config.shard_backbone`` asks for it and
    there are several processes (one process: a warning, nothing to shard across); returns whether it did.

    The model's trainable part and the backbone's input embedding are moved to ``accelerator.device``; the
    rest of the backbone is moved there one shard at a time.
    """
    if not config.shard_backbone:
        return False
    if accelerator.num_processes == 1:
        warnings.warn(
            "shard_backbone=True with one process: nothing to shard across, the backbone stays whole. Launch "
            "several processes (torchrun --nproc-per-node N ... / accelerate launch) to shard it.",
            stacklevel=2,
        )
        return False
    if not is_sharded(model.backbone):  # `shard_from_main` sharded it as it loaded
        shard_backbone(model.backbone, accelerator.device)
    for name, child in model.named_children():
        if name != "backbone":
            child.to(accelerator.device)
    return True


def shard_backbone(backbone: nn.Module, device: torch.device) -> None:
    """Shard a frozen Hugging Face backbone in place across the processes of the default process group
    (FSDP2, dim-0 shards), keeping its input embedding whole on `device`.

    Args:
        backbone: a transformers model whose weights are all frozen.
        device: this process's device (its type picks the mesh: "cpu" with gloo, "cuda" with NCCL).
    """
    _check_shardable(backbone)
    _shard(backbone, device)
    backbone.get_input_embeddings().to(device)
    _make_root(backbone)


def _check_shardable(backbone: nn.Module) -> None:
    """Refuse a backbone with trainable weights, or a process without its group."""
    import torch.distributed as dist

    if any(p.requires_grad for p in backbone.parameters()):
        raise ValueError(
            "shard_backbone shards a frozen backbone; freeze it first (finetune/lora runs train it)."
        )
    if not dist.is_initialized():
        raise RuntimeError(
            "shard_backbone needs the processes' group: launch with torchrun and call "
            "torch.distributed.init_process_group first (attempt.training.loop.train does, through Accelerate)."
        )


def shard_from_main(backbone: nn.Module, device: torch.device) -> None:
    """Shard a frozen backbone whose weights only process 0 holds, the other processes having built it on the
    meta device (``load_backbone(..., empty=True)``): after it, every process holds what `shard_backbone`
    would have given it, but no process other than 0 ever held more than its shards, the input embedding,
    the buffers and one broadcast tensor.

    Args:
        backbone: process 0: the loaded backbone, frozen; the others: the same model on the meta device.
        device: this process's device.
    """
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    _check_shardable(backbone)
    _check_same_dtypes(backbone)
    main = dist.get_rank() == 0
    full = backbone.state_dict() if main else {}  # process 0's tensors, alive until broadcast
    ties = _ties(backbone)
    _shard(backbone, device)
    if main:
        backbone.get_input_embeddings().to(device)
    else:  # storage for its shards, the whole-kept embedding and the buffers, filled below
        backbone.to_empty(device=device)
        _retie(backbone, ties)
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
    set_model_state_dict(backbone, full, options=options)
    _broadcast_buffers(backbone, device)
    del full
    _make_root(backbone)


def _broadcast_buffers(backbone: nn.Module, device: torch.device) -> None:
    """Every buffer to `device` with process 0's values: not all are in the state dict (RoPE's inv_freq is
    not), and the other processes' are uninitialised storage."""
    import torch.distributed as dist

    for module in backbone.modules():
        for name, buffer in list(module._buffers.items()):
            if buffer is not None:
                module._buffers[name] = buffer = buffer.to(device)
                dist.broadcast(buffer, src=0)


def _check_same_dtypes(backbone: nn.Module) -> None:
    """Refuse (on every process) a backbone built with other parameters or dtypes than process 0 loaded: the
    broadcast would cast process 0's weights silently."""
    import torch.distributed as dist

    dtypes = {name: str(param.dtype) for name, param in backbone.named_parameters()}
    main = [dtypes]
    dist.broadcast_object_list(main, src=0)
    agree: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(agree, main[0] == dtypes)  # all raise together, none waits in the next collective
    if not all(agree):
        others = [rank for rank, same in enumerate(agree) if not same]
        raise ValueError(
            f"processes {others} built the backbone with other parameters or dtypes than process 0 loaded; load "
            "the same backbone with the same dtype on every process (TrainConfig.backbone_dtype)."
        )


def is_sharded(backbone: nn.Module) -> bool:
    """Whether `backbone` is already sharded (an FSDP2 module)."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(backbone, FSDPModule)


def _shard(backbone: nn.Module, device: torch.device) -> None:
    """``fully_shard`` each unit of `_units`, then the backbone, across the default group; the input embedding
    (and what is tied to it) is left out."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    kept = set(backbone.get_input_embeddings().parameters())  # tied output embeddings: the same tensors
    for unit in _units(backbone, kept):  # bottom-up, as fully_shard requires
        fully_shard(unit, mesh=mesh, ignored_params=kept)
    # the root too frees its gathered weights after each forward (FSDP keeps them by default, saving one
    # gather in backward): evaluation and generation run no backward, and a large output layer would stay whole
    fully_shard(backbone, mesh=mesh, ignored_params=kept, reshard_after_forward=True)


def _make_root(backbone: nn.Module) -> None:
    """Make the sharded backbone FSDP's root now, all units being in place.

    FSDP takes the first module to run forward as its root. Rank classification and seq2seq generation call the
    encoder on its own first, which would make it the root and the backbone's own forward fail after. torch
    2.13 has no public call for this: ``FSDPState._lazy_init`` runs only in the root's pre-forward hook, and
    the public ``FSDPModule.unshard`` initialises the parameter groups, not the root; so the private call stays.
    """
    from torch.distributed.fsdp import fully_shard

    fully_shard.state(backbone)._lazy_init()


def _ties(backbone: nn.Module) -> list[list[tuple[nn.Module, str]]]:
    """The parameters held by several modules (a tied input and output embedding): [[(module, name), ...]]."""
    holders: dict[int, list[tuple[nn.Module, str]]] = {}
    for module in backbone.modules():
        for name, param in module._parameters.items():
            if param is not None:
                holders.setdefault(id(param), []).append((module, name))
    return [places for places in holders.values() if len(places) > 1]


def _retie(backbone: nn.Module, ties: list[list[tuple[nn.Module, str]]]) -> None:
    """Point every holder of a tied parameter at the first one's again (``to_empty`` gives each its own)."""
    for (first, first_name), *others in ties:
        for module, name in others:
            module._parameters[name] = first._parameters[first_name]


def _units(backbone: nn.Module, kept: set[nn.Parameter]) -> list[nn.Module]:
    """The submodules sharded as units of their own, deepest first: the transformer blocks (but one holding the
    input embedding: BERT lists its embeddings module among its blocks) and the stacks the library calls on
    their own (an encoder-decoder's encoder and decoder, an encoder's base model)."""
    blocks = set(getattr(backbone, "_no_split_modules", None) or ())
    stacks = [getattr(backbone, "base_model", backbone)]
    if getattr(backbone.config, "is_encoder_decoder", False):
        stacks += [backbone.get_encoder(), backbone.get_decoder()]
    units = [
        (name, module)
        for name, module in backbone.named_modules()
        if name  # the backbone itself is the last unit, sharded by the caller
        and (
            any(module is stack for stack in stacks)
            or (type(module).__name__ in blocks and not kept & set(module.parameters()))
        )
    ]
    return [module for name, module in sorted(units, key=lambda unit: -unit[0].count("."))]


def local_share(backbone: nn.Module) -> tuple[int, int, int]:
    """How much of a (sharded) backbone this process holds: ``(local sharded elements, all sharded elements,
    whole-kept elements)``; the whole-kept ones are the input embedding (each process holds all of them)."""
    from torch.distributed.fsdp import FSDPModule
    from torch.distributed.tensor import DTensor

    for module in backbone.modules():
        if isinstance(module, FSDPModule):
            module.reshard()  # weights still gathered (a forward without backward) count as what they are
    local = total = whole = 0
    for param in backbone.parameters():
        if isinstance(param, DTensor):
            local += param.to_local().numel()
            total += param.numel()
        else:
            whole += param.numel()
    return local, total, whole


def average_gradients(parameters: Iterable[nn.Parameter]) -> None:
    """Average the gradients of the unsharded trainable parameters over all processes, as DDP does: one
    all-reduce of one flat buffer. A parameter no process used (a head of a task absent from the batch) keeps
    ``grad=None``, so AdamW leaves it alone, as with DDP's ``find_unused_parameters``; one used by some
    processes gets the average with zeros from the others."""
    import torch.distributed as dist
    from torch.distributed.tensor import DTensor

    params = [p for p in parameters if p.requires_grad and not isinstance(p, DTensor)]
    if not params or not dist.is_initialized() or dist.get_world_size() == 1:
        return
    device = params[0].device
    grads = [
        p.grad.float().reshape(-1) if p.grad is not None else torch.zeros(p.numel(), device=device)
        for p in params
    ]
    used = torch.tensor([float(p.grad is not None) for p in params], device=device)  # (P,)
    flat = torch.cat([*grads, used])
    dist.all_reduce(flat)
    sums, used = flat[: -len(params)], flat[-len(params) :]
    for param, chunk, users in zip(
        params, sums.split([p.numel() for p in params]), used.tolist(), strict=True
    ):
        param.grad = None if users == 0 else (chunk / dist.get_world_size()).view_as(param).to(param.dtype)


def check_shared_folder(folder: Path, accelerator: Any) -> None:
    """Refuse a run whose output_dir is not one folder for all its processes (a node-local disk on several
    machines): the main process writes a file there and every process must see it within `SHARED_WAIT_S`.

    Every process gets the same answer, so all raise together (one raising alone would leave the others
    waiting in the next collective). Call it on every process once the main one has created `folder`.

    Raises:
        FolderNotShared: one line naming the processes (and their hosts) that cannot see the file.
    """
    from accelerate.utils import broadcast_object_list, gather_object

    if accelerator.num_processes == 1:
        return
    token = broadcast_object_list([secrets.token_hex(8)])[0]  # the main process's, on every process
    probe = Path(folder) / f"{PROBE_PREFIX}{token}"
    if accelerator.is_main_process:
        storage.write_text(probe, token)
    accelerator.wait_for_everyone()
    seen = _sees(probe, token)
    answers = gather_object([(accelerator.process_index, socket.gethostname(), seen)])
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        probe.unlink(missing_ok=True)
    blind = [f"process {rank} on {host}" for rank, host, ok in answers if not ok]
    if blind:
        raise FolderNotShared(
            f"output_dir {Path(folder).absolute()} is not shared by all processes: a file the main process wrote there is not "
            f"visible to {', '.join(blind)}. Put output_dir on a filesystem every node mounts at the same path "
            "(NFS, Lustre, ...)."
        )


def _sees(probe: Path, token: str) -> bool:
    """Whether this process reads `token` in `probe`, polling up to `SHARED_WAIT_S` (an NFS client may cache
    the folder's listing for a few seconds)."""
    deadline = time.monotonic() + SHARED_WAIT_S
    while True:
        try:
            if probe.read_text() == token:
                return True
        except OSError:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)


__all__ = [
    "FolderNotShared",
    "average_gradients",
    "check_shared_folder",
    "local_share",
    "is_sharded",
    "shard_backbone",
    "shard_from_main",
    "shard_if_asked",
]
