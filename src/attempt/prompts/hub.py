"""Prompt libraries on the Hugging Face Hub: push a library, pull one (checked), and the Hub card metadata.

A pushed library is a model repository holding, per prompt, ``<name>.safetensors`` (as on disk) and
``<name>.json`` (its metadata with the content hash), beside a ``README.md`` card whose front matter the Hub
reads (``library_name: attempt-tuning``, ``base_model``, ``tags``, ``datasets``). Pulling checks every prompt
against the hash its JSON records before any is written, so a changed or damaged download is refused whole.
A library on the Hub is also read in place: ``PromptLibrary("hf://owner/name")`` (its cached snapshot, read-only).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from attempt.prompts.library import PromptLibrary, SourcePrompt
from attempt.tasks import get_task
from attempt.utils import hub, reading

# the Hub's task type of each task kind (model-index results)
HUB_TASK_TYPES = {"classification": "text-classification", "multiple_choice": "multiple-choice",
                  "regression": "text-classification", "extractive_qa": "question-answering"}  # fmt: skip
BASE_TAGS = ("attempt", "soft-prompt", "prompt-tuning", "peft")


def _datasets(tasks: Iterable[str]) -> list[str]:
    """The Hub dataset ids of the tasks that come from the Hub (a task file's own files have none)."""
    ids = []
    for name in tasks:
        try:
            task = get_task(name)
        except KeyError:  # a task of a prompt trained elsewhere, not registered here
            continue
        if task.data_files:
            continue
        ids.append(task.hub_id)
    return list(dict.fromkeys(ids))


def _results(tasks: Iterable[str], scores: Mapping[str, Any], split: str) -> list[dict[str, Any]]:
    """model-index results: each Hub task's metrics on `split` (tasks without a Hub dataset are left out)."""
    results = []
    for name in tasks:
        metrics = scores.get(name)
        task = get_task(name)
        if not isinstance(metrics, Mapping) or task.data_files:
            continue
        dataset = {
            "name": task.name,
            "type": task.hub_id,
            "split": split,
            **({"config": task.config} if task.config else {}),
        }
        values = [{"type": metric, "value": round(float(metrics[metric]), 4), "name": f"{split} {metric}"}
                  for metric in task.metrics if isinstance(metrics.get(metric), (int, float))]  # fmt: skip
        if values:
            results.append(
                {"task": {"type": HUB_TASK_TYPES[task.kind]}, "dataset": dataset, "metrics": values}
            )
    return results


def hub_metadata(
    name: str, backbones: Iterable[str | None], tasks: Iterable[str], tags: Iterable[str] = (),
    scores: Mapping[str, Any] | None = None, split: str = "test",
) -> dict[str, Any]:  # fmt: skip
    """The front matter fields of a card the Hub reads: library_name, base_model (backbones named by a Hub
    id; a local path is left out), tags, datasets, metrics and, with `scores` (``{task: {metric: value}}``),
    the scores as a model-index.

    Args:
        name: what the model-index calls the model.
        backbones: the backbones' names as recorded.
        tasks: the tasks trained on (datasets, metrics) and scored (`scores`).
        tags: tags beside the library's own.
        scores: metrics per task, e.g. a run's test metrics; None: no model-index.
        split: the split the scores come from.
    """
    tasks = list(dict.fromkeys(tasks))
    known = [t for t in tasks if _registered(t)]
    fields: dict[str, Any] = {
        "library_name": hub.LIBRARY_NAME,
        "base_model": sorted({b for b in backbones if b and hub.is_repo_id(b) and not Path(b).exists()}),
        "tags": list(dict.fromkeys([*BASE_TAGS, *tags])),
        "datasets": _datasets(known),
        "metrics": list(dict.fromkeys(m for t in known for m in get_task(t).metrics)),
    }
    results = _results(known, scores, split) if scores else []
    if results:
        fields["model-index"] = [{"name": name, "results": results}]
    return fields


def _registered(task: str) -> bool:
    try:
        get_task(task)
    except KeyError:
        return False
    return True


def library_card(prompts: list[SourcePrompt], repo: str) -> str:
    """The README.md of a pushed library: Hub metadata, a table of its prompts, how to use it."""
    fields = hub_metadata(
        repo, (p.backbone for p in prompts), (p.task for p in prompts if p.task), ["prompt-library"]
    )
    rows = [f"| `{p.name}` | {p.task or ''} | {p.backbone or ''} | {p.length}×{p.hidden_size} | "
            f"{json.dumps(p.score) if p.score else ''} | `{p.hash[:19]}…` |" for p in prompts]  # fmt: skip
    return "\n".join([
        *hub.front_matter(fields), "", f"# Source prompts: {repo}", "",
        "Soft prompts for [ATTEMPT](https://arxiv.org/abs/2205.11961) (attentional mixtures of soft prompts), "
        "each trained by prompt tuning on a source task over a frozen backbone; the library `attempt-tuning` "
        "mixes them for new tasks.", "",
        "| prompt | task | backbone | m×d | score | content hash |", "|---|---|---|---|---|---|", *rows, "",
        "## How to use", "", "```bash", f"attempt prompts pull hf://{repo} --into prompts/{repo.split('/')[1]}",
        f"attempt train --library hf://{repo} --mode attempt --tasks rte ...", f"attempt prompts rank --library hf://{repo} --task cb",
        "```", "", "Each `<name>.json` records its prompt's content hash; `attempt prompts pull` refuses files that do "
        "not match it.", "",
    ])  # fmt: skip


def library_files(library: PromptLibrary, repo: str) -> dict[str, bytes]:
    """What `push_library` sends: every prompt's two files (each checked as `PromptLibrary.get` checks it) and
    the card.

    Raises:
        ValueError: an empty library. attempt.utils.reading.CorruptFile: a damaged prompt (fix it first).
    """
    prompts = library.load()
    if not prompts:
        raise ValueError(
            f"{library.root} holds no prompts to push (a library is <name>.safetensors + <name>.json)."
        )
    files: dict[str, bytes] = {}
    for prompt in prompts:
        tensor = library.root / f"{prompt.name}.safetensors"
        files[tensor.name] = tensor.read_bytes()  # as on disk, so a pulled prompt is bit-identical
        files[f"{prompt.name}.json"] = (
            json.dumps(prompt.metadata(), indent=2, sort_keys=True) + "\n"
        ).encode()
    files[hub.CARD_NAME] = library_card(prompts, repo).encode()
    return files


def push_library(
    library: str | Path, repo: str, private: bool = False, message: str | None = None
) -> dict[str, Any]:
    """Push the prompt library folder `library` to the Hub model repository `repo` (``owner/name``), which
    then holds exactly its prompts and card (`attempt.utils.hub.upload`); returns what `upload` returns."""
    repo_id = hub.check_push_target(repo)
    files = library_files(PromptLibrary(library), repo_id)
    names = sorted(path[: -len(".json")] for path in files if path.endswith(".json"))
    return hub.upload(repo_id, files, message or f"attempt prompts push: {', '.join(names)}", private=private)


def _checked(remote: PromptLibrary, name: str, location: str, into: Path) -> SourcePrompt:
    """Prompt `name` of a downloaded library, refused unless its JSON records a hash its tensor matches."""
    refused = f"Refused {location} (nothing was written to {into}): prompt {name!r}"
    meta_path = remote.root / f"{name}.json"
    meta = reading.read_json(meta_path, "Pull again.") if meta_path.is_file() else None
    if not isinstance(meta, dict) or not meta.get("hash"):
        raise reading.CorruptFile(
            f"{refused} has no {name}.json recording its hash, so it cannot be checked."
        )
    try:
        return remote.get(name)
    except (ValueError, OSError) as error:  # CorruptFile: a changed tensor, a damaged file
        detail = str(error).replace(remote._damaged_fix(name), "").strip()
        raise reading.CorruptFile(
            f"{refused} fails its check: {detail} Pull again, or push it again."
        ) from None


def pull_library(location: str, into: str | Path, overwrite: bool = False) -> list[str]:
    """Copy the prompt library at `location` (``hf://owner/name[@revision]`` or ``owner/name``) into the local
    library folder `into`, each prompt checked against its recorded hash first; returns the names pulled.

    Raises:
        FileNotFoundError / OSError: the repository cannot be had (`attempt.utils.hub.download`).
        ValueError: it holds no prompts. attempt.utils.reading.CorruptFile: a prompt fails its check (nothing
            is written). FileExistsError: `into` has a different prompt of the same name and not `overwrite`.
    """
    into = Path(into)
    remote = PromptLibrary(hub.local_folder(location))
    names = remote.names()
    if not names:
        raise ValueError(
            f"{location} holds no prompts (<name>.safetensors + <name>.json): is it a prompt library?"
        )
    prompts = [_checked(remote, name, location, into) for name in names]
    local = PromptLibrary(into)
    clashes = [p.name for p in prompts if p.name in local and local.get(p.name).hash != p.hash]
    if clashes and not overwrite:
        raise FileExistsError(
            f"{into} already has different prompts named {', '.join(clashes)}; pull into another folder (--into) "
            "or pass --overwrite to replace them."
        )
    for prompt in prompts:
        local.add(prompt, overwrite=True)
    return names


__all__ = ["hub_metadata", "library_card", "library_files", "pull_library", "push_library"]
