"""What a saved run says about itself: the software that trained it, and a short model card.

``best/environment.json`` records the versions of attempt, torch, transformers and accelerate and the
backbone (its recorded name, the name_or_path it was loaded from, and the Hub commit when it came from the
Hub cache), so a result can be traced back to the code and weights that produced it. ``best/README.md`` is a
model card in the Hub's format (YAML front matter, then Markdown): the method, backbone, tasks, source
prompts, metrics and how to load the model.
"""

from __future__ import annotations

import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from attempt.config import TrainConfig
from attempt.prompts.hub import hub_metadata
from attempt.runs.layout import BEST_DIR, CARD_FILE, ENVIRONMENT_FILE
from attempt.utils import storage
from attempt.utils.hub import front_matter

PACKAGES = {
    "attempt": "attempt-tuning",
    "torch": "torch",
    "transformers": "transformers",
    "accelerate": "accelerate",
}
METHODS = {
    "attempt": "ATTEMPT: an attentional mixture of frozen source prompts and a trained target prompt "
    "(Asai et al., EMNLP 2022)",
    "source": "prompt tuning of a source prompt (Lester et al., 2021), for ATTEMPT's prompt library",
    "prompt_tuning": "prompt tuning (Lester et al., 2021)",
    "spot": "SPoT: prompt tuning initialised from a source prompt (Vu et al., 2022)",
    "finetune": "full fine-tuning (baseline)",
    "lora": "LoRA (baseline)",
}


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def environment(config: TrainConfig, backbone: Any) -> dict[str, Any]:
    """The versions and the backbone identity a run records."""
    backbone_config = getattr(backbone, "config", None)
    return {
        "versions": {name: _version(dist) for name, dist in PACKAGES.items()}
        | {"python": platform.python_version()},
        "backbone": {
            "name": config.backbone,
            "name_or_path": getattr(backbone_config, "_name_or_path", None),
            "revision": getattr(
                backbone_config, "_commit_hash", None
            ),  # set by from_pretrained from the Hub cache
            "model_type": getattr(backbone_config, "model_type", None),
            "dtype": config.backbone_dtype,
        },
    }


def write_environment(directory: Path, config: TrainConfig, backbone: Any) -> dict[str, Any]:
    """Write ``environment.json`` into `directory`; returns what it holds."""
    record = environment(config, backbone)
    storage.write_json(directory / ENVIRONMENT_FILE, record)
    return record


def _metrics_lines(title: str, metrics: dict[str, Any]) -> list[str]:
    lines = [f"| {title} | metric | value |", "|---|---|---:|"]
    for task, scores in metrics.items():
        if isinstance(scores, dict):
            lines += [
                f"| {task} | {name} | {value:.2f} |"
                for name, value in scores.items()
                if isinstance(value, (int, float))
            ]
    if isinstance(metrics.get("average"), (int, float)):
        lines.append(f"| average | | {metrics['average']:.2f} |")
    return lines + [""]


def model_card(
    config: TrainConfig, record: dict[str, Any], sources: list[dict[str, Any]], validation: dict[str, Any],
    best_step: int | None, test: dict[str, Any] | None = None, repo: str | None = None,
) -> str:  # fmt: skip
    """The text of ``best/README.md``: front matter the Hub reads (`attempt.prompts.hub.hub_metadata`, with the
    test scores, else the validation ones), then Markdown. `repo` (``owner/name``): the card of a run pushed
    there (`attempt push`), saying how to load it from the Hub."""
    versions = ", ".join(f"{k} {v}" for k, v in record["versions"].items() if v)
    revision = record["backbone"]["revision"]
    baseline = config.mode in (
        "finetune",
        "lora",
    )  # attempt.modeling.finetune.FineTuneModel, else AttemptModel
    module, cls = (
        ("attempt.modeling.finetune", "FineTuneModel") if baseline else ("attempt.modeling", "AttemptModel")
    )
    scores, split = (test, "test") if test else (validation, "validation")
    fields = hub_metadata(repo or f"{config.mode}-{'-'.join(config.tasks)}", [config.backbone], config.tasks,
                          [config.mode], scores, split)  # fmt: skip
    lines = [
        *front_matter(fields), "",
        f"# {config.mode} on {', '.join(config.tasks)}", "",
        f"- **Method:** {METHODS[config.mode]}; the backbone stays frozen.",
        f"- **Backbone:** `{config.backbone}`" + (f" (revision `{revision}`)" if revision else ""),
        f"- **Tasks:** {', '.join(config.tasks)}",
        "- **Source prompts:** " + (", ".join(f"`{s['name']}` (task {s.get('task')}, {s['hash'][:19]}…)" for s in sources)
                                  + "; copies in `sources/`" if sources else "none"),
        f"- **Trained with:** {versions}; {config.max_steps} steps, learning rate {config.learning_rate}, seed {config.seed}",
        "", f"## Metrics (best validation step {best_step})", "",
    ]  # fmt: skip
    lines += _metrics_lines("validation", validation)
    if test is not None:
        lines += _metrics_lines("test", test)
    run, folder = (f"hf://{repo}", f"hf://{repo}") if repo else ("RUN_DIR", BEST_DIR)
    loaded = f'run_folder("{run}")' if repo else f'"{run}"'
    lines += [
        "## How to load", "", "This repository alone is enough (downloaded and checked by `attempt-tuning`):" if repo
        else "The run folder (this folder's parent) alone is enough:", "", "```bash",
        f"attempt predict {run} --inputs inputs.jsonl --output predictions.jsonl", "```", "", "```python",
        "from attempt.runs.build import load_run", *(["from attempt.runs.hub import run_folder"] if repo else []), "",
        f"model, tokenizer, config = load_run({loaded})", "```", "",
    ]  # fmt: skip
    if not (repo and baseline):  # FineTuneModel.from_pretrained reads a local folder only
        lines += [
            "or this folder onto the backbone:", "", "```python", f"from {module} import {cls}",
            "from attempt.backbones.resolve import load_backbone", "", f"backbone, tokenizer, _ = load_backbone({config.backbone!r})",
            f'model = {cls}.from_pretrained(backbone, "{folder}")', "```", "",
        ]  # fmt: skip
    return "\n".join(lines)


def write_model_card(
    directory: Path, config: TrainConfig, model: Any, validation: dict[str, Any], best_step: int | None,
    test: dict[str, Any] | None = None,
) -> None:  # fmt: skip
    """Write ``environment.json`` and ``README.md`` into the saved model folder `directory`."""
    record = write_environment(directory, config, getattr(model, "backbone", None))
    card = model_card(config, record, getattr(model, "source_info", []), validation, best_step, test)
    storage.write_text(directory / CARD_FILE, card)


__all__ = [
    "environment",
    "model_card",
    "write_environment",
    "write_model_card",
]
