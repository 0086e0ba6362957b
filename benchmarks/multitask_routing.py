"""Does one trained attention give different inputs different source prompts on a real backbone?

    python -m benchmarks.multitask_routing                 # SmolLM2 + shipped prompts, sst2 + rte, 3 seeds
    python -m benchmarks.multitask_routing --report-only   # the report again, from the committed JSON
    python -m benchmarks.multitask_routing --tiny --out /tmp/x   # the tests' tiny causal LM (seconds)

The few-shot grid's targets all take mnli as their best single source, and its trained attention gives every
input the same weights. Here one attention serves two tasks whose inputs want different sources: sst2 (one
sentence; the sst2 prompt) and rte (a sentence pair; the mnli prompt). This is the paper's ATTEMPT-m on GLUE,
whose targets include its source tasks. Each task has its own target prompt, and the target's key differs per
task, so the target's own weight differs by construction. The sources' weights renormalised among themselves,
a_j / Σ_sources a, depend only on the attention's input summary h(x̂). If they differ between the tasks, the
attention reads the input.

Per seed (each seeds the initialisation and the sampled rows) the report gives each task's mean renormalised
source weights over its test rows, their spread within the task (mean std per prompt) and the total-variation
distance between the two tasks' means (0: the same mixture for both; 1: disjoint), plus each task's test score.
The JSON is rewritten after every seed and committed: a seed it holds for the same options is not run again
(the run folders, under <out>/runs/, are not committed).
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attempt.runs.layout import RunLayout
from attempt.utils import storage
from attempt.utils.reading import read_json
from attempt.utils.textfiles import numbered_jsonl
from benchmarks.common import DATA_DIR, REPO, RUNS, results_dir, shown, slug, write_json

BACKBONE = "HuggingFaceTB/SmolLM2-135M-Instruct"
LIBRARY = REPO / "prompts" / "smollm2-135m-instruct"


@dataclass(frozen=True)
class Options:
    """One multi-task run per seed: which tasks, which sources, how long."""

    backbone: str = BACKBONE
    library: Path = LIBRARY
    sources: tuple[str, ...] = ("mnli", "qnli", "sst2")
    tasks: tuple[str, ...] = ("sst2", "rte")
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 120  # of 8 mixed-task examples: ~480 per task
    batch: int = 8
    lr: float = 0.01  # the few-shot grid's prompt learning rate
    attention_lr: float | None = None  # None: lr (TrainConfig.attention_learning_rate)
    centre_inputs: bool = False  # AttemptConfig.centre_inputs: x̂ minus the training inputs' mean
    train_limit: int = 1000  # rows per task: equal pools, so examples-proportional mixing is 50/50
    test_limit: int = 200
    max_source_length: int = 128
    tiny: bool = False


def config(options: Options, seed: int, out: Path, data_dir: Path):
    """The TrainConfig of one seed's run: ATTEMPT-m (one attention, one target prompt per task)."""
    from attempt.config import TrainConfig

    return TrainConfig(
        mode="attempt", backbone="tiny-llama" if options.tiny else options.backbone, tasks=options.tasks,
        source_prompts=options.sources, library=str(options.library), output_dir=str(out), data_dir=str(data_dir),
        max_steps=options.steps, batch_size=options.batch, eval_batch_size=32, learning_rate=options.lr,
        attention_learning_rate=options.attention_lr,
        warmup_steps=options.steps // 10, seed=seed, split_seed=0, max_source_length=options.max_source_length,
        eval_every=0, train_limit=options.train_limit, eval_limit=64, test_limit=options.test_limit,
        eval_method="rank",
        attempt={"prompt_length": _prompt_length(options.library), "centre_inputs": options.centre_inputs},
    )  # fmt: skip


def _prompt_length(library: Path) -> int:
    from attempt.prompts.library import PromptLibrary

    lib = PromptLibrary(library)
    return lib.get(lib.names()[0]).length


def routing(predictions: list[dict[str, Any]], sources: tuple[str, ...]) -> dict[str, Any]:
    """Per task: mean source weights renormalised over the sources, and their spread within the task; the
    total-variation distance between the first two tasks' means."""
    per_task: dict[str, list[dict[str, float]]] = {}
    for row in predictions:
        weights = row["attention_weights"]
        total = sum(weights[s] for s in sources)
        per_task.setdefault(row["task"], []).append({s: weights[s] / total for s in sources})
    result: dict[str, Any] = {"tasks": {}}
    for task, rows in per_task.items():
        mean = {s: sum(r[s] for r in rows) / len(rows) for s in sources}
        spread = sum(math.sqrt(sum((r[s] - mean[s]) ** 2 for r in rows) / len(rows)) for s in sources) / len(
            sources
        )
        result["tasks"][task] = {"mean": mean, "spread": spread, "rows": len(rows)}
    first, second = list(result["tasks"].values())[:2]
    result["distance"] = sum(abs(first["mean"][s] - second["mean"][s]) for s in sources) / 2
    return result


def run_seed(options: Options, seed: int, root: Path, data_dir: Path, backbone, tokenizer) -> dict[str, Any]:
    """Train (or read back) one seed's run; returns its test scores and routing."""
    import copy

    from attempt.training.loop import train

    out = RunLayout(root / f"seed{seed}")
    if not out.results.is_file():
        train(
            config(options, seed, out.root, data_dir),
            model=copy.deepcopy(backbone),
            tokenizer=tokenizer,
            progress=False,
        )
    results = read_json(out.results, f"Delete {out.root} to run the seed again.")
    predictions = [row for _, row in numbered_jsonl(out.predictions())]
    return {"seed": seed, "test": {t: results["test"][t] for t in options.tasks},
            "routing": routing(predictions, options.sources)}  # fmt: skip


def _load(options: Options) -> tuple[Any, Any]:
    """(backbone, tokenizer): the tiny causal LM or the real one."""
    if options.tiny:
        from attempt.testing import build_backbone, build_tokenizer

        return build_backbone("causal"), build_tokenizer("causal")
    from attempt.backbones.resolve import load_backbone

    backbone, tokenizer, _ = load_backbone(options.backbone)
    return backbone, tokenizer


def report_paths(options: Options, out: Path) -> tuple[Path, Path]:
    """(JSON, Markdown) of these options under `out`: multitask-routing-<backbone>[-attention-lr<x>][-centred]."""
    name = "tiny-llama" if options.tiny else slug(options.backbone)
    stem = f"multitask-routing-{name}" + (
        f"-attention-lr{options.attention_lr:g}" if options.attention_lr else ""
    )
    stem += "-centred" if options.centre_inputs else ""
    return out / f"{stem}.json", out / f"{stem}.md"  # not with_suffix: "lr0.1" has a dot


def run(options: Options, out: Path, data_dir: Path = DATA_DIR, threads: int | None = None) -> dict[str, Any]:
    """Every seed's run (the backbone loads only when one must train), then the report under `out`."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    json_path, md_path = report_paths(options, out)
    recorded = {"options": {k: (shown(v) if isinstance(v, Path) else v) for k, v in options.__dict__.items()}}
    kept = _kept_runs(json_path, recorded["options"])
    results, loaded = {**recorded, "runs": []}, None
    name = "tiny-llama" if options.tiny else slug(options.backbone)
    root = out / RUNS / f"{name}-{_options_key(recorded['options'])}"  # other options, other runs
    for seed in options.seeds:  # the JSON is rewritten after every seed: it is what a session commits
        if seed in kept:
            results["runs"].append(kept[seed])
        else:
            loaded = loaded or _load(options)
            results["runs"].append(run_seed(options, seed, root, data_dir, *loaded))
        write_json(json_path, results)
    storage.write_text(md_path, report(results))
    return results


def _options_key(options: dict[str, Any]) -> str:
    import hashlib

    text = json.dumps({k: v for k, v in options.items() if k != "seeds"}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _kept_runs(path: Path, options: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """The seeds an earlier run of the same options finished (its JSON is committed; the run folders are not)."""
    if not path.is_file():
        return {}
    earlier = read_json(path, "Delete it to run every seed again.")
    now = json.loads(json.dumps(options))  # tuples as the JSON holds them: lists
    # an option added since is absent from an older JSON: at its default it describes the same runs
    added = {k: v for k, v in now.items() if k not in earlier["options"] and v == getattr(Options, k, None)}
    recorded = {**added, **earlier["options"]}
    same = {k: v for k, v in recorded.items() if k != "seeds"} == {
        k: v for k, v in now.items() if k != "seeds"
    }
    return {r["seed"]: r for r in earlier["runs"]} if same else {}


def report(results: dict[str, Any]) -> str:
    """The Markdown report: one row per seed and task, then the distance between the tasks per seed."""
    o = results["options"]
    sources = o["sources"]
    lines = [f"# One attention, two tasks: does it route per input? ({o['backbone'] if not o['tiny'] else 'tiny'})", "",
             f"ATTEMPT-m on {' + '.join(o['tasks'])}, sources {', '.join(sources)}, {o['steps']} steps of {o['batch']} "
             f"mixed-task examples, lr {o['lr']} (attention {o['attention_lr'] or o['lr']}), {o['train_limit']} training rows per task, test rows ≤ {o['test_limit']} "
             f"per task{', x̂ centred (AttemptConfig.centre_inputs)' if o.get('centre_inputs') else ''}. Weights are the sources' only, renormalised among themselves (they depend on the input alone).",
             "", "| seed | task | test | " + " | ".join(sources) + " | spread within task |",
             "|---:|---|---:|" + "---:|" * len(sources) + "---:|"]  # fmt: skip
    for r in results["runs"]:
        for task, t in r["routing"]["tasks"].items():
            weights = " | ".join(f"{t['mean'][s]:.3f}" for s in sources)
            lines.append(
                f"| {r['seed']} | {task} | {r['test'][task]['average']:.1f} | {weights} | {t['spread']:.4f} |"
            )
    distances = [r["routing"]["distance"] for r in results["runs"]]
    lines += ["", "Total-variation distance between the two tasks' mean source weights, per seed: "
              + ", ".join(f"{d:.3f}" for d in distances) + f" (mean {sum(distances) / len(distances):.3f}; "
              "0 = the same mixture for every input)."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=results_dir("multitask_routing"))
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=Options.steps)
    parser.add_argument("--attention-lr", type=float, help="the attention's learning rate (default: --lr's)")
    parser.add_argument("--centre-inputs", action="store_true", help="AttemptConfig.centre_inputs (x̂ − μ)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny causal LM")
    parser.add_argument("--library", type=Path, default=LIBRARY)
    parser.add_argument(
        "--report-only", action="store_true", help="train nothing: the report of these options' JSON again"
    )
    args = parser.parse_args(argv)
    options = Options(
        library=args.library,
        seeds=tuple(range(args.seeds)),
        steps=args.steps,
        tiny=args.tiny,
        attention_lr=args.attention_lr,
        centre_inputs=args.centre_inputs,
    )
    if args.report_only:
        json_path, md_path = report_paths(options, args.out)
        storage.write_text(md_path, report(read_json(json_path, "Run the benchmark to write it again.")))
        print(md_path.read_text(), end="")
        return 0
    print(report(run(options, args.out, args.data_dir, threads=args.threads)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
