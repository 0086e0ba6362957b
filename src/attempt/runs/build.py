"""The model of a run: built from its `TrainConfig` (ATTEMPT, prompt tuning, SPoT, or a fine-tuning / LoRA
baseline), or reloaded from the folder a run wrote.

`model_class(mode)` names the class of a mode; `build_model` makes an untrained model of a config over a
backbone; `load_best_weights` puts ``best/`` back into a trained one; `load_run` / `load_saved_model` rebuild
a finished run's best model, checking every file first.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from attempt.config import TrainConfig
from attempt.modeling import AttemptModel
from attempt.modeling.base import SOURCES_DIR
from attempt.modeling.finetune import MODES as FINETUNE_MODES
from attempt.modeling.finetune import FineTuneModel
from attempt.prompts.library import PromptLibrary, SourcePrompt
from attempt.runs import layout
from attempt.runs.layout import RunLayout
from attempt.runs.portable import run_config
from attempt.tasks import get_task
from attempt.utils.reading import CorruptFile, read_json, verify_model_directory


def model_class(mode: str) -> type[AttemptModel] | type[FineTuneModel]:
    """The model class of a run's mode: FineTuneModel for "finetune" and "lora", else AttemptModel (which
    also does source prompts, prompt tuning and SPoT)."""
    return FineTuneModel if mode in FINETUNE_MODES else AttemptModel


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


def build_model(
    config: TrainConfig, backbone: torch.nn.Module, tokenizer: Any, family: str
) -> AttemptModel | FineTuneModel:
    """The model of `config.mode` over `backbone` (AttemptModel, or FineTuneModel for finetune/lora)."""
    labels = {t: get_task(t).num_labels for t in config.tasks}
    if family == "encoder":
        no_head = [t for t, n in labels.items() if n == 0]
        if no_head:
            raise ValueError(
                f"Task(s) {no_head} are extractive QA; an encoder backbone with a head cannot learn them."
            )
    if model_class(config.mode) is FineTuneModel:
        return FineTuneModel.from_backbone(
            backbone, mode=config.mode, tasks=list(config.tasks), num_labels=labels if family == "encoder" else None,
            lora_rank=config.lora_rank, lora_alpha=config.lora_alpha, backbone_name=config.backbone, seed=config.seed,
        )  # fmt: skip
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
    weights = best_dir / model_class(config.mode).weights_file
    state = load_file(str(weights), device=str(next(model.parameters()).device))
    _, unexpected = model.load_state_dict(state, strict=False)
    if unexpected:
        raise ValueError(f"{best_dir} holds weights this model lacks: {unexpected}.")


def damaged_model_fix(directory: str | Path) -> str:
    """What to do about a damaged saved model in `directory`."""
    return (
        f"The saved model in {directory} cannot be trusted: restore the folder from a copy, or train the run "
        "again in a fresh output_dir."
    )


def verify_saved_model(config: TrainConfig, directory: Path) -> dict[str, Any]:
    """Check the model folder of `config.mode` in `directory` (`attempt.utils.reading.verify_model_directory`: a
    damaged file is a one-line error, not a parser's traceback); returns its config file's contents."""
    cls = model_class(config.mode)
    return verify_model_directory(directory, cls.config_file, cls.weights_file, damaged_model_fix(directory))


def _not_finished(run: RunLayout) -> FileNotFoundError:
    return FileNotFoundError(
        f"{run.root} is not a finished training run: it needs {layout.BEST_DIR}/ and {layout.CONFIG_FILE} "
        "(written by attempt.training.loop.train after its first evaluation); pass the output_dir of "
        "`attempt train`."
    )


def read_run_config(run_dir: str | Path, finished: bool = True, fix: str | None = None) -> TrainConfig:
    """The TrainConfig of a run (``train_config.json``, else its copy in ``best/``), its paths resolved against
    where the run is now (`attempt.runs.portable.run_config`). It registers nothing: `load_run` registers the
    run's own tasks, or `TrainConfig.register_tasks` before then.

    Args:
        run_dir: the run's output_dir.
        finished: also require its ``best/`` model (False: a config alone will do, e.g. to compare runs' configs
            before loading any; `load_run` requires ``best/`` anyway).
        fix: what an error about a damaged file says to do (default: restore it from its copy).

    Raises:
        FileNotFoundError: when the run has no ``train_config.json`` or, if `finished`, no ``best/`` model.
        CorruptFile: the file is not JSON, or not a TrainConfig (unknown keys, invalid values): the message names
            the file, what is wrong and `fix`.
    """
    run = RunLayout(run_dir)
    config_path = next((p for p in (run.config, run.best_config) if p.is_file()), None)
    if config_path is None or (finished and not run.best.is_dir()):
        raise _not_finished(run)
    if fix is None:
        fix = (
            f"Restore it: {run.best_config.relative_to(run.root)} is a copy of it."
            if config_path == run.config
            else damaged_model_fix(run.best)
        )
    data = read_json(config_path, fix)
    try:
        return run_config(data, config_path.parent)
    except CorruptFile:
        raise
    except ValueError as error:  # a key or value TrainConfig refuses: say which file holds it
        raise CorruptFile(f"{config_path}: {error} {fix}") from None


def load_run(
    run_dir: str | Path, backbone: torch.nn.Module | None = None, tokenizer: Any = None,
    library: str | Path | None = None, config: TrainConfig | None = None,
) -> tuple[Any, Any, Any]:  # fmt: skip
    """Reload the best model of a run written by `attempt.training.loop.train`, wherever the run folder is now,
    registering the run's own tasks (`TrainConfig.register_tasks`).

    Args:
        run_dir: the run's output_dir (holding ``best/`` and ``train_config.json``).
        backbone: the backbone to load onto; None resolves ``config.backbone`` with `load_backbone`.
        tokenizer: its tokenizer (required when `backbone` is given).
        library: take the source prompts from this library instead of ``best/sources/`` (or, for runs saved
            without those copies, the recorded library).
        config: the run's config when the caller has already read it (`read_run_config`), so it is read once.

    Returns:
        ``(model, tokenizer, TrainConfig)``; the model is an AttemptModel (with its source prompts, checked
        by content hash) or, for finetune/lora runs, a FineTuneModel, in eval mode. The config's paths are
        resolved against `run_dir` (`attempt.runs.portable.run_config`).

    Raises:
        FileNotFoundError: when the run has no ``best/`` model or no ``train_config.json``.
    """
    run = RunLayout(run_dir)
    config = read_run_config(run_dir) if config is None else config
    if not run.best.is_dir():  # a config read with finished=False
        raise _not_finished(run)
    config.register_tasks()  # before the backbone loads: a clash of task names fails at once
    if backbone is None:
        from attempt.backbones.resolve import load_backbone

        backbone, loaded_tokenizer, _ = load_backbone(config.backbone, dtype=config.backbone_dtype)
        tokenizer = tokenizer or loaded_tokenizer
    elif tokenizer is None:
        raise ValueError("load_run(run_dir, backbone=...) also needs the backbone's tokenizer=.")
    elif config.backbone_dtype is not None:
        backbone = backbone.to(getattr(torch, config.backbone_dtype))  # as it was trained
    model = load_saved_model(config, backbone, run.best, library)
    return model.eval(), tokenizer, config


def load_saved_model(
    config: TrainConfig, backbone: torch.nn.Module, directory: str | Path, library: str | Path | None = None
) -> AttemptModel | FineTuneModel:
    """Load the model class of `config.mode` saved in `directory` onto `backbone`, after checking the folder
    (`verify_saved_model`), with the run's own tasks registered (`TrainConfig.register_tasks`). An ATTEMPT
    model gets its source prompts from `library` when given, else from its own ``sources/`` copies, else from
    the recorded library."""
    directory = Path(directory)
    config.register_tasks()
    if model_class(config.mode) is FineTuneModel:
        return FineTuneModel.from_pretrained(backbone, directory)  # checks the folder itself
    meta = verify_saved_model(config, directory)
    if not meta.get("source_prompts"):
        library = None
    elif library is None and not (directory / SOURCES_DIR).is_dir():
        library = config.library
    return AttemptModel.from_pretrained(backbone, directory, source_prompts=library)
