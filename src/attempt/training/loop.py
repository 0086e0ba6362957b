"""One explicit training loop for every mode, on Hugging Face Accelerate.

    from attempt.config import TrainConfig
    from attempt.training.loop import train
    result = train(TrainConfig(mode="attempt", backbone="t5-base", tasks=("rte",), source_prompts=("mnli",)))

The same code runs on a CPU, one GPU, or several processes started with ``accelerate launch`` /
``torchrun`` (DDP, or with ``shard_backbone`` the frozen backbone sharded by torch FSDP2:
`attempt.training.sharding`; Accelerate's FSDP and DeepSpeed are refused, see
`attempt.training.devices.check_distributed_type`). Reading order of
`train`:

1. load the data (`attempt.data.splits.load_task_data`: `paper_splits`, few-shot, limits; every row checked),
   then resolve the backbone and build the model of the mode (`attempt.runs.build`);
2. AdamW over ``model.parameter_groups(...)`` with linear warm-up and decay; ``accelerator.prepare``;
3. resume from ``output_dir/checkpoint`` when there is one (`attempt.runs.state`: same config and same source
   prompts required; a checkpoint interrupted inside its atomic swap is put back, an incomplete one is an
   error, never a restart);
4. the loop: micro-batches with gradient accumulation, clipping, a NaN/inf guard, logging, evaluation every
   ``eval_every`` steps, best model kept in ``best/``, early stopping, an atomic checkpoint after every
   evaluation;
5. the best model is reloaded and evaluated on the test split; mode="source" adds its prompt to the library.

Files written in ``output_dir`` (named by `attempt.runs.layout`): ``train_config.json``, ``metrics.jsonl`` (`attempt.runs.metrics_log`),
``checkpoint/`` (see `attempt.runs.checkpoint`), ``best/`` (``save_pretrained`` with the source prompts in
``sources/``, ``train_config.json``, ``environment.json`` and the model card ``README.md``: `attempt.runs.model_card`),
``results.json``, ``test_predictions.jsonl``, ``attention.json`` (ATTEMPT only) and ``trackers/`` (the local
files of ``report_to``'s trackers, e.g. TensorBoard's). The folder is locked for the whole run (``.attempt.lock``, `attempt.utils.locking`): a second run on
it fails at once.

Batches (`attempt.data.batching.BatchStream`) are a pure function of (seed, epoch, number of processes), so a
resumed run consumes exactly the batches the interrupted run would have. Evaluation is shared between the
processes: each predicts the rows ``i % num_processes == process_index`` of every task, the per-example
records are gathered to every process (``accelerate.utils.gather_object``) and put back in row order, and
every process computes the same metrics from all rows, so decisions such as the best step and early stopping
are the same everywhere; only the main process writes the files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from attempt.config import TrainConfig
from attempt.data.batching import BatchStream
from attempt.data.collate import Collator, make_examples
from attempt.data.splits import load_task_data
from attempt.evaluation.evaluate import evaluate
from attempt.modeling import AttemptModel
from attempt.modeling.protocols import TrainableModel
from attempt.prompts.library import PromptLibrary, SourcePrompt
from attempt.runs import checkpoint, layout
from attempt.runs.build import build_model, load_best_weights, model_class, verify_saved_model
from attempt.runs.layout import RunLayout
from attempt.runs.metrics_log import MetricsLog
from attempt.runs.model_card import write_model_card
from attempt.runs.portable import saved_config
from attempt.runs.state import LoopState, check_saved_config, resume_or_start, save_checkpoint
from attempt.training.defaults import warn_other_backbone, with_backbone_defaults
from attempt.training.devices import make_accelerator
from attempt.training.preflight import check_before_training
from attempt.training.sharding import average_gradients, check_shared_folder, shard_from_main, shard_if_asked
from attempt.utils import locking, storage


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    """What `train` returns (also written to ``output_dir/results.json``).

    Attributes:
        output_dir: the run folder.
        best_step: the step of the best validation average (the model in ``best/``).
        best_metrics: validation metrics at best_step: ``{task: {metric: value}, "average": x}``.
        test_metrics: test metrics of the best model, same shape.
        trainable_parameters: number of trained parameters.
        steps: optimizer steps done (fewer than max_steps after early stopping).
        wall_time_s: seconds this call took.
    """

    output_dir: Path
    best_step: int | None
    best_metrics: dict[str, Any]
    test_metrics: dict[str, Any]
    trainable_parameters: int
    steps: int
    wall_time_s: float


def _resolved_config(config: TrainConfig) -> TrainConfig:
    """The config with the library path made absolute while this process trains; the files it writes
    record it relative to the run folder (`attempt.runs.portable`), so the run folder can move. A library on the
    Hub (hf://) is its downloaded snapshot."""
    return dataclasses.replace(config, library=str(PromptLibrary(config.library).root.resolve()))


# ------------------------------------------------------------------------------------------------- train
def _setup(
    config: TrainConfig, backbone: torch.nn.Module | None, tokenizer: Any, accelerator: Any
) -> tuple[
    TrainConfig, Any, dict[str, dict[str, list[dict[str, Any]]]], TrainableModel, Collator, BatchStream
]:
    """Step 1 of `train`: the backbone (resolved from ``config.backbone`` unless given; with shard_backbone on
    several processes loaded sharded from the start, `attempt.training.sharding.shard_from_main`), the data,
    the mode's model over the backbone, the collator and the batch stream; returns (config, tokenizer, data,
    model, collator, stream), the config with what it left to the backbone picked
    (`attempt.training.defaults`, activation checkpointing included)."""
    warn_other_backbone(config, accelerator.is_main_process)
    data = load_task_data(config)  # first: a bad row or an unreadable split fails before minutes of loading
    if backbone is None:
        from attempt.backbones.resolve import load_backbone

        # sharded from the start: process 0 reads the weights, the others build the backbone without them
        from_main = config.shard_backbone and accelerator.num_processes > 1
        empty = from_main and not accelerator.is_main_process
        backbone, loaded_tokenizer, family = load_backbone(
            config.backbone, dtype=config.backbone_dtype, empty=empty
        )
        tokenizer = tokenizer or loaded_tokenizer
        if from_main:
            shard_from_main(backbone.requires_grad_(False), accelerator.device)
    else:
        from attempt.backbones.resolve import family_of

        if tokenizer is None:
            raise ValueError("train(config, backbone=...) also needs the backbone's tokenizer=.")
        family = family_of(backbone.config)
        if config.backbone_dtype is not None:
            backbone = backbone.to(getattr(torch, config.backbone_dtype))
    checkpointable = getattr(backbone, "supports_gradient_checkpointing", False)
    config = with_backbone_defaults(config, family, accelerator.is_main_process, checkpointable)
    model = build_model(config, backbone, tokenizer, family)
    if config.gradient_checkpointing:
        enable_checkpointing(backbone)
    collator = Collator(
        tokenizer,
        family,
        list(config.tasks),
        config.max_source_length,
        config.max_target_length,
        config.pad_to,
    )
    stream = BatchStream(
        {t: make_examples(t, data[t]["train"]) for t in config.tasks}, collator, config,
        accelerator.process_index, accelerator.num_processes,
    )  # fmt: skip
    return config, tokenizer, data, model, collator, stream


def enable_checkpointing(backbone: torch.nn.Module) -> None:
    """Turn on activation checkpointing in a Hugging Face backbone, the non-reentrant variant: the backbone is
    frozen, and only that variant carries the gradient through it to the prompt.

    Raises:
        ValueError: the backbone's class cannot checkpoint (``supports_gradient_checkpointing`` False).
    """
    if not getattr(backbone, "supports_gradient_checkpointing", False):
        raise ValueError(
            f"{type(backbone).__name__} does not support gradient checkpointing; run with "
            "--no-gradient-checkpointing."
        )
    if hasattr(backbone, "activation_checkpointing_enable"):  # transformers >= 5 name
        backbone.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def linear_schedule(
    optimizer: torch.optim.Optimizer, warmup: int, total: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over `warmup` steps to the groups' learning rates, then linear decay to 0 at `total`."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _record_validation(state: LoopState, metrics: dict[str, Any], patience: int | None) -> bool:
    """Note a validation result in `state`: the new best (True), or one more evaluation without improvement,
    which stops training once there have been `patience` of them in a row (False)."""
    state.last_eval_step = state.step
    score = metrics["average"] if math.isfinite(metrics["average"]) else -math.inf
    if state.best_score is None or score > state.best_score:
        state.best_score, state.best_step, state.best_metrics, state.bad_evals = score, state.step, metrics, 0
        return True
    state.bad_evals += 1
    state.stopped_early = patience is not None and state.bad_evals >= patience
    return False


def _prompt_name(config: TrainConfig) -> str:
    """The library name of a mode="source" run's prompt."""
    return config.prompt_name or config.tasks[0]


def _store_prompt(config: TrainConfig, prompt: SourcePrompt, overwrite: bool) -> None:
    """Add the trained prompt to the library; the name was free when the run started, but another writer may
    have taken it since: say how to store this run's prompt anyway."""
    try:
        PromptLibrary(config.library).add(prompt, overwrite=overwrite)
    except FileExistsError as error:
        raise FileExistsError(
            f"{error} It was added while this run trained. To store this run's prompt instead, run the same "
            f"command again with --overwrite: it resumes from {RunLayout(config.output_dir).checkpoint} and only "
            "evaluates and stores."
        ) from None


def _source_prompt(
    config: TrainConfig, state: LoopState, model: TrainableModel, output_dir: Path
) -> SourcePrompt:
    """The trained prompt of a mode="source" run, with its training record, for the prompt library."""
    task = config.tasks[0]
    return SourcePrompt(
        name=_prompt_name(config), embeddings=model.mixture.target_prompts[0].detach().cpu(), task=task,
        backbone=config.backbone,
        training={
            "steps": state.step, "best_step": state.best_step, "learning_rate": config.learning_rate,
            "batch_size": config.batch_size, "max_steps": config.max_steps, "seed": config.seed,
            "prompt_length": model.prompt_length, "k_shot": config.k_shot, "train_limit": config.train_limit,
            "output_dir": str(output_dir), "config": config.to_dict(),
        },
        score={k: v for k, v in state.best_metrics.get(task, {}).items()},
    )  # fmt: skip


def attention_reach_note(mixture: Any) -> str | None:
    """One line on how far the attention can move from uniform at the start (None without a learned attention)."""
    if mixture is None or not mixture.uses_attention or mixture.config.uniform_weights:
        return None
    k = len(mixture.logit_bounds())
    reach = mixture.max_attention_weight()
    note = (
        f"[attempt] attention: T = {mixture.temperature:.4g}; no input can give any one of the {k} prompts "
        f"more than {reach:.2f} of the weight at the current LayerNorm gain (uniform: {1 / k:.2f})"
    )
    if reach < 1.5 / k:
        note += (
            f". The prompts' pooled keys are small beside T, so the attention stays near uniform unless the "
            f"LayerNorm gain grows; attempt.temperature='auto' (scaled to the keys) or a lower one (e.g. "
            f"sqrt(d) = {mixture.hidden_size**0.5:.3g}) lets it move."
        )
    return note


def train(
    config: TrainConfig,
    *,
    backbone: torch.nn.Module | None = None,
    tokenizer: Any = None,
    progress: bool = True,
    overwrite_prompt: bool = False,
    _on_step: Callable[[int, TrainableModel], None] | None = None,
    model: torch.nn.Module | None = None,
) -> TrainResult:
    """Train, evaluate and save one run described by `config` (see `TrainConfig`).

    Args:
        config: the run.
        backbone: a backbone module to use instead of resolving ``config.backbone`` (needs `tokenizer`).
        tokenizer: the backbone's tokenizer.
        progress: show a tqdm progress bar (main process only).
        overwrite_prompt: mode="source": replace a prompt of the same name already in the library (else the
            run is refused before it trains).
        _on_step: test hook called as ``_on_step(step, model)`` after each optimizer step (after that step's
            evaluation and checkpoint); raising from it simulates a killed run.
        model: the former name of `backbone`, still accepted.

    Returns:
        A `TrainResult`. Resumes automatically from ``output_dir/checkpoint`` when present.

    Raises:
        TrainingDiverged: the loss became NaN/inf (the last good checkpoint is kept).
        CheckpointMismatch: ``output_dir/checkpoint`` belongs to a run with another configuration.
        attempt.utils.reading.CorruptFile: a run about to resume whose ``train_config.json`` is damaged (before
            the backbone loads; `attempt.runs.state.check_saved_config`).
        attempt.utils.locking.FolderInUse: another live process is training in ``output_dir`` (its pid is named).
        FileExistsError, ValueError, PermissionError: mode="source" whose prompt could not be stored (name taken
            without `overwrite_prompt`, invalid name, library not writable); raised before training.
        NotADirectoryError, PermissionError, FileNotFoundError, ValueError: an output_dir, data_dir or source
            prompt that cannot work (`attempt.training.preflight`); raised before the backbone loads.
    """
    if model is not None:
        if backbone is not None:
            raise TypeError("train() got both backbone= and model= (its former name); pass backbone= only.")
        backbone = model
    started = time.time()
    config = _resolved_config(config)
    config.register_tasks()  # the run's own tasks (task files), before anything looks them up
    if config.mode == "source":  # a prompt that could not be stored must fail the run now, not after training
        PromptLibrary(config.library).check_writable(_prompt_name(config), overwrite_prompt)
    check_before_training(config)  # paths and names, before the backbone loads
    check_saved_config(config.output_dir)  # a run about to resume: its train_config.json reads back
    accelerator = make_accelerator(config)
    with _locked_run_folder(Path(config.output_dir), accelerator):
        return _train(config, accelerator, backbone, tokenizer, progress, overwrite_prompt, _on_step, started)


@contextlib.contextmanager
def _locked_run_folder(output_dir: Path, accelerator: Any) -> Iterator[None]:
    """Hold the run folder's lock for the whole run, so a second run on the same output_dir fails at once
    instead of mixing its checkpoints and logs with ours. The main process holds it; the others learn whether
    it got it (all processes must raise together, or the others would wait for the main one forever)."""
    from accelerate.utils import gather_object

    with contextlib.ExitStack() as stack:
        error = None
        if accelerator.is_main_process:
            hint = "Wait for it to finish, stop it, or pick another output_dir."
            try:
                stack.enter_context(
                    locking.locked(output_dir, "run folder", hint=hint, lock_file=layout.LOCK_FILE)
                )
            except locking.FolderInUse as refused:
                error = str(refused)
        errors = [e for e in gather_object([error]) if e]
        if errors:
            raise locking.FolderInUse(errors[0])
        check_shared_folder(output_dir, accelerator)  # several machines: one folder for all, or refused now
        yield


def _train(
    config: TrainConfig, accelerator: Any, backbone: torch.nn.Module | None, tokenizer: Any, progress: bool,
    overwrite_prompt: bool, _on_step: Callable[[int, TrainableModel], None] | None, started: float,
) -> TrainResult:  # fmt: skip
    """`train` once the run folder is locked: steps 1 to 5 of the module docstring."""
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    set_seed(config.seed)

    # 1. backbone, data, model ------------------------------------------------------------------------
    config, tokenizer, data, model, collator, stream = _setup(config, backbone, tokenizer, accelerator)
    sharded = shard_if_asked(config, accelerator, model)  # --shard-backbone: FSDP2 over the processes

    # 2. optimizer, schedule, accelerate ---------------------------------------------------------------
    groups = model.parameter_groups(
        config.learning_rate, config.attention_learning_rate, config.head_learning_rate, config.weight_decay
    )
    optimizer = torch.optim.AdamW(groups, lr=config.learning_rate)
    scheduler = linear_schedule(
        optimizer, config.warmup_steps, config.max_steps
    )  # stepped by hand, once per step
    # forward and backward go through `parallel_model`, the model as accelerator.prepare wraps it (DDP over
    # several processes, so gradients are averaged); saving and evaluation use the model itself
    if sharded:  # DDP cannot wrap sharded weights: the model only gets its autocast, gradients are averaged
        parallel_model = accelerator.prepare_model(model, evaluation_mode=True)
        optimizer = accelerator.prepare_optimizer(optimizer)
    else:
        parallel_model, optimizer = accelerator.prepare(model, optimizer)
    model = accelerator.unwrap_model(parallel_model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)

    # 3. resume ---------------------------------------------------------------------------------------
    state, resumed = resume_or_start(config, accelerator, model, optimizer, scheduler)
    log = MetricsLog(
        Path(config.output_dir), accelerator.is_main_process, state.step if resumed else None,
        trackers=accelerator if config.report_to else None, hparams=saved_config(config),
    )  # fmt: skip
    if accelerator.is_main_process and progress and not resumed:
        _print_start(config, model, trainable)

    # 4. the loop ---------------------------------------------------------------------------------------
    show = progress and accelerator.is_main_process
    window = _LossWindow()
    with tqdm(
        total=config.max_steps, initial=state.step, disable=not show, desc=f"train {config.mode}"
    ) as bar:
        while state.step < config.max_steps and not state.stopped_early:
            _optimizer_step(
                config,
                accelerator,
                parallel_model,
                optimizer,
                scheduler,
                stream,
                collator,
                state,
                window,
                log,
                average=sharded,
            )
            state.step += 1
            _log_train(config, accelerator, optimizer, state, window, log, bar)
            if (config.eval_every and state.step % config.eval_every == 0) or state.step == config.max_steps:
                _validate(config, accelerator, model, tokenizer, data, state, log, bar if show else None)
                save_checkpoint(config, accelerator, model, optimizer, scheduler, state)
            if _on_step is not None:
                _on_step(state.step, model)

    # 5. test the best model ---------------------------------------------------------------------------
    test_metrics, attention = _test_best(config, accelerator, model, tokenizer, data, state, log)
    return _report(
        config, accelerator, model, state, test_metrics, attention, trainable, overwrite_prompt, started
    )


def _print_start(config: TrainConfig, model: TrainableModel, trainable: int) -> None:
    print(f"[attempt] {config.mode} on {', '.join(config.tasks)}: {trainable:,} trainable parameters")
    note = attention_reach_note(getattr(model, "mixture", None))
    if note:
        print(note)


@dataclass
class _LossWindow:
    """The training loss and throughput since the last train-loss log line."""

    loss: float = 0.0  # summed over micro-batches
    batches: int = 0  # micro-batches
    examples: int = 0  # over all processes
    start: float = field(default_factory=time.time)


def _optimizer_step(
    config: TrainConfig, accelerator: Any, parallel_model: torch.nn.Module, optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LambdaLR, stream: BatchStream, collator: Collator, state: LoopState,
    window: _LossWindow, log: MetricsLog, average: bool = False,
) -> None:  # fmt: skip
    """One optimizer step: ``gradient_accumulation_steps`` micro-batches (the next ones of `stream`, whose
    position is kept in `state`), each NaN/inf-guarded, then clipping and the update. Losses go to `window`.
    `average`: average the gradients over the processes first (a sharded backbone, without DDP)."""
    parallel_model.train()
    device = accelerator.device
    for _ in range(config.gradient_accumulation_steps):
        local, state.epoch, state.batch_index = stream.next_local(state.epoch, state.batch_index)
        batch = {k: v.to(device) for k, v in collator(local).items()}
        with accelerator.accumulate(parallel_model):
            # loss_only: no logits are read here, so a decoder runs its LM head on the label positions alone
            loss = parallel_model(**batch, loss_only=True).loss
            _check_finite(config, accelerator, state, loss, log)
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                if average:
                    average_gradients(parallel_model.parameters())
                if config.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(parallel_model.parameters(), config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
        window.loss += float(loss.detach().float().item())
        window.batches += 1
        window.examples += len(local) * accelerator.num_processes


def _check_finite(
    config: TrainConfig, accelerator: Any, state: LoopState, loss: torch.Tensor, log: MetricsLog
) -> None:
    """The NaN/inf guard. Every process learns whether any process's loss is not finite, so all stop together
    (one stopping alone would leave the others waiting in the next collective); the last checkpoint is kept."""
    bad = accelerator.reduce(
        torch.tensor([0.0 if torch.isfinite(loss).item() else 1.0], device=accelerator.device), "sum"
    )
    if bad.item() == 0:
        return
    log.log({"step": state.step + 1, "type": "diverged", "loss": float(loss.item())})
    log.close()
    checkpoint_dir = RunLayout(config.output_dir).checkpoint
    kept = (
        f"the last good checkpoint ({checkpoint_dir}) is kept"
        if checkpoint.exists(checkpoint_dir)
        else "no checkpoint had been written yet"
    )
    raise TrainingDiverged(
        f"The training loss became {float(loss.item())} at step {state.step + 1} "
        f"(mode={config.mode}, tasks={list(config.tasks)}, learning_rate={config.learning_rate}); "
        f"training stopped and {kept}. {divergence_advice(config)}"
    )


def divergence_advice(config: TrainConfig) -> str:
    """What to change after a NaN/inf loss, from what the run already does: clipping is suggested only when
    it is off (max_grad_norm defaults to 1.0), half precision only when it is on."""
    tries = [f"lower the learning rate (now {config.learning_rate:g}; e.g. {config.learning_rate / 10:g})"]
    if config.max_grad_norm <= 0:
        tries.append("clip gradients (max_grad_norm=1.0)")
    if config.mixed_precision != "no":
        tries.append(f"train without mixed precision (mixed_precision='no', now {config.mixed_precision!r})")
    if config.backbone_dtype in ("bfloat16", "float16"):
        tries.append(f"keep the backbone in float32 (backbone_dtype=None, now {config.backbone_dtype!r})")
    return f"Try: {'; '.join(tries)}; and train again in a fresh output_dir."


def _log_train(
    config: TrainConfig, accelerator: Any, optimizer: torch.optim.Optimizer, state: LoopState, window: _LossWindow,
    log: MetricsLog, bar: Any,
) -> None:  # fmt: skip
    """After a step: the progress bar, and every ``log_every`` steps (and the first and last) the mean training
    loss over all processes, the learning rates and the throughput; then a new window starts."""
    lrs = {g.get("name", str(i)): g["lr"] for i, g in enumerate(optimizer.param_groups)}
    throughput = window.examples / max(time.time() - window.start, 1e-9)
    bar.update(1)
    bar.set_postfix(
        loss=f"{window.loss / window.batches:.4f}",
        lr=f"{next(iter(lrs.values())):.2e}",
        ex_s=f"{throughput:.1f}",
    )
    if state.step % config.log_every == 0 or state.step == config.max_steps or state.step == 1:
        mean_loss = accelerator.reduce(
            torch.tensor([window.loss / window.batches], device=accelerator.device), "mean"
        ).item()
        log.log(
            {
                "step": state.step,
                "type": "train",
                "loss": mean_loss,
                "lr": lrs,
                "examples_per_s": throughput,
                "epoch": state.epoch,
            }
        )
        window.loss, window.batches, window.examples, window.start = 0.0, 0, 0, time.time()


def _evaluate_split(
    config: TrainConfig, accelerator: Any, model: TrainableModel, tokenizer: Any, data: dict[str, Any], split: str,
    predictions: Path | None = None, attention: Path | None = None,
) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:  # fmt: skip
    """(metrics, mean attention) of `model` on one split of every task, shared between the processes; only
    the main process writes the files."""
    from accelerate.utils import gather_object

    is_main = accelerator.is_main_process
    float32 = config.eval_in_float32
    with _without_autocast_forward(model) if float32 else contextlib.nullcontext():
        result = evaluate(
            model, tokenizer, {t: data[t][split] for t in config.tasks}, method=config.eval_method,
            batch_size=config.eval_batch_size, max_source_length=config.max_source_length,
            max_target_length=config.max_target_length, pad_to=config.pad_to,
            predictions_path=predictions if is_main else None, attention_path=attention if is_main else None,
            autocast=None if float32 else accelerator.autocast, gather=gather_object,
            shard=(accelerator.process_index, accelerator.num_processes) if accelerator.num_processes > 1 else None,
            lockstep=config.shard_backbone,  # a sharded forward is a collective: as many on every process
        )  # fmt: skip
    return dict(result), result.attention


@contextlib.contextmanager
def _without_autocast_forward(model: TrainableModel) -> Iterator[None]:
    """Inside, `model.forward` is its class's own: `accelerator.prepare` with mixed precision sets an instance
    `forward` that autocasts (kept by `unwrap_model`), which would score an encoder's head in bf16 even outside
    any autocast context. Put back on the way out: training goes on through it."""
    wrapped = model.__dict__.pop("forward", None)
    try:
        yield
    finally:
        if wrapped is not None:
            model.forward = wrapped


def _validate(
    config: TrainConfig, accelerator: Any, model: TrainableModel, tokenizer: Any, data: dict[str, Any],
    state: LoopState, log: MetricsLog, bar: Any | None,
) -> None:  # fmt: skip
    """Evaluate on the validation split, keep the model in ``best/`` when it is the best so far, log the
    result (and write it under the progress `bar`, when one is shown)."""
    metrics, _ = _evaluate_split(config, accelerator, model, tokenizer, data, "validation")
    if _record_validation(state, metrics, config.early_stopping_patience):  # the best so far: keep it
        if accelerator.is_main_process:
            run = RunLayout(config.output_dir)
            # best/ alone is enough to predict: it carries copies of the source prompts and the config
            model.save_pretrained(
                run.best, **({"include_sources": True} if model_class(config.mode) is AttemptModel else {})
            )
            storage.write_json(run.best_config, saved_config(config, run.best))
            write_model_card(run.best, config, model, metrics, state.step)
        accelerator.wait_for_everyone()
    log.log(
        {
            "step": state.step,
            "type": "eval",
            "split": "validation",
            "metrics": metrics,
            "best_step": state.best_step,
        }
    )
    if bar is not None:
        bar.write(
            f"step {state.step}: validation {metrics['average']:.2f} (best {state.best_score:.2f} at step {state.best_step})"
        )


def _test_best(
    config: TrainConfig, accelerator: Any, model: TrainableModel, tokenizer: Any, data: dict[str, Any],
    state: LoopState, log: MetricsLog,
) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:  # fmt: skip
    """Step 5 of `train`: reload ``best/`` into `model` and evaluate it on the test split, writing the
    predictions and the mean attention; returns (test metrics, attention)."""
    run = RunLayout(config.output_dir)
    accelerator.wait_for_everyone()
    verify_saved_model(config, run.best)  # a damaged file: one line, not a traceback
    load_best_weights(config, model, run.best)
    test_metrics, attention = _evaluate_split(
        config,
        accelerator,
        model,
        tokenizer,
        data,
        "test",
        run.predictions("test"),
        run.attention,
    )
    log.log(
        {
            "step": state.step,
            "type": "eval",
            "split": "test",
            "metrics": test_metrics,
            "best_step": state.best_step,
        }
    )
    log.close()
    return test_metrics, attention


def _report(
    config: TrainConfig, accelerator: Any, model: TrainableModel, state: LoopState, test_metrics: dict[str, Any],
    attention: dict[str, dict[str, float]], trainable: int, overwrite_prompt: bool, started: float,
) -> TrainResult:  # fmt: skip
    """The end of a run: mode="source" stores its prompt in the library; ``results.json`` is written."""
    run = RunLayout(config.output_dir)
    if accelerator.is_main_process:  # the card again, now with the test metrics
        write_model_card(run.best, config, model, state.best_metrics, state.best_step, test_metrics)
    if config.mode == "source" and accelerator.is_main_process:
        _store_prompt(config, _source_prompt(config, state, model, run.root), overwrite_prompt)
    result = TrainResult(
        output_dir=run.root, best_step=state.best_step, best_metrics=state.best_metrics, test_metrics=test_metrics,
        trainable_parameters=trainable, steps=state.step, wall_time_s=time.time() - started,
    )  # fmt: skip
    if accelerator.is_main_process:
        storage.write_json(
            run.results,
            {
                "mode": config.mode, "tasks": list(config.tasks), "best_step": result.best_step,
                "validation": result.best_metrics, "test": result.test_metrics, "attention": attention,
                "trainable_parameters": trainable, "steps": result.steps, "stopped_early": state.stopped_early,
                "wall_time_s": result.wall_time_s,
            },
        )  # fmt: skip
    accelerator.wait_for_everyone()
    return result


__all__ = ["TrainResult", "TrainingDiverged", "train"]
