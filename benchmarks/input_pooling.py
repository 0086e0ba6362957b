"""How much the attention's input summary x̂ differs from input to input, per pooling, on a real backbone.

    python -m benchmarks.input_pooling                     # SmolLM2-135M-Instruct, cb / rte / sst2: ~1 minute
    python -m benchmarks.input_pooling --backbone sentence-transformers/all-MiniLM-L6-v2
    python -m benchmarks.input_pooling --report-only       # the report again, from its committed JSON

ATTEMPT's attention sees an input only through x̂, the pool of its token embeddings (`attempt.mixture.pool_inputs`;
the paper: max-pool). If x̂ is nearly the same vector for every input, a fresh attention gives every input nearly
the same weights; training can still tell such inputs apart when the loss rewards it (at cosine 0.99 in
tests/test_mixture.py), so this measures where training starts, not where it can go. This measures, on the first N validation rows of each task as the task formats
them: the mean pairwise cosine of x̂ (1 = identical directions), the size of its part that varies between inputs
(‖x̂ − mean x̂‖ / ‖x̂‖, averaged), and the cosine of two tasks' centroids after removing the overall mean
(negative: the tasks sit on opposite sides); and, where source prompts are shipped for the backbone, how much a
freshly initialised mixture's weights differ between inputs (no training; the embedding table only).
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path
from typing import Any

import torch

from attempt.utils import storage
from attempt.utils.reading import read_json
from benchmarks.common import DATA_DIR, results_dir, write_json

POOLINGS = ("max", "mean")


def pooled(task_name: str, embeddings: torch.Tensor, tokenizer, rows: int, data_dir: str) -> dict[str, Any]:
    """{pooling: (N, d) x̂} of the task's first `rows` validation inputs, formatted as training formats them, and
    "tokens": their (N, L, d) embeddings and (N, L) mask."""
    from attempt.data.sources import load_split
    from attempt.mixture import pool_inputs
    from attempt.tasks import get_task

    task = get_task(task_name)
    texts = [task.format(row)[0] for row in load_split(task, task.validation_split, data_dir)[:rows]]
    encoded = tokenizer(texts, return_tensors="pt", padding=True, truncation=True, max_length=128)
    tokens = embeddings[encoded["input_ids"]]  # (N, L, d)
    return {how: pool_inputs(tokens, encoded["attention_mask"], how) for how in POOLINGS} | {
        "tokens": (tokens, encoded["attention_mask"])
    }


def spread(x: torch.Tensor) -> dict[str, float]:
    """Mean pairwise cosine and mean ‖x − mean‖ / ‖x‖ of (N, d) vectors."""
    cosine = torch.nn.functional.cosine_similarity(x.unsqueeze(0), x.unsqueeze(1), dim=-1)  # (N, N)
    n = x.shape[0]
    off_diagonal = (cosine.sum() - n) / (n * n - n)
    varying = (x - x.mean(0)).norm(dim=1).mean() / x.norm(dim=1).mean()
    return {"pairwise_cosine": round(float(off_diagonal), 3), "varying_part": round(float(varying), 3)}


def init_spread(
    tokens_by_task: dict, library: Path, sources: list[str], task: str, seeds: int = 5
) -> dict[str, dict]:
    """{pooling/temperature: mean over seeds of the per-prompt std of the weights over the task's inputs, and of
    each input's largest weight} of a freshly initialised mixture over the library's prompts (no training)."""
    from attempt.config import AttemptConfig
    from attempt.mixture import AttentionalMixture
    from attempt.prompts.library import PromptLibrary

    prompts = torch.stack(
        [PromptLibrary(library).get(name).embeddings.float() for name in sources]
    )  # (t, m, d)
    tokens, mask = tokens_by_task[task]
    out = {}
    for how in POOLINGS:
        for temperature in ("paper", "auto"):
            spreads, peaks = [], []
            for seed in range(seeds):
                torch.manual_seed(seed)
                config = AttemptConfig(
                    prompt_length=prompts.shape[1], tasks=(task,), pooling=how, temperature=temperature
                )
                mixture = AttentionalMixture(config, prompts.shape[2], prompts, prompts[0].clone(), sources)
                _, weights = mixture(tokens, mask)  # (N, t+1)
                spreads.append(float(weights.std(0).mean()))
                peaks.append(float(weights.max(1).values.mean()))
            out[f"{how}/{temperature}"] = {"T": round(mixture.temperature, 1), "input_spread": round(sum(spreads) / seeds, 4),
                                           "peak": round(sum(peaks) / seeds, 3)}  # fmt: skip
    return out


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """The spread of x̂ per pooling and task, and of a fresh mixture's weights where prompts are shipped."""
    from attempt.backbones.resolve import load_backbone

    backbone, tokenizer, _ = load_backbone(args.backbone)
    embeddings = backbone.get_input_embeddings().weight.detach().float()
    with torch.no_grad():
        by_task = {task: pooled(task, embeddings, tokenizer, args.rows, args.data_dir) for task in args.tasks}
    result = {
        "backbone": args.backbone,
        "rows_per_task": args.rows,
        "python": platform.python_version(),
        "pooling": {},
    }
    for how in POOLINGS:
        everything = torch.cat([by_task[t][how] for t in args.tasks])
        centre = everything.mean(0)
        first, second = (by_task[t][how].mean(0) - centre for t in args.tasks[:2])
        result["pooling"][how] = {
            "tasks": {t: spread(by_task[t][how]) for t in args.tasks},
            f"centroid_cosine_{args.tasks[0]}_{args.tasks[1]}": round(float(torch.nn.functional.cosine_similarity(first, second, dim=0)), 3),
        }  # fmt: skip
    from attempt.prompts.shipped import shipped_library

    library = args.library or shipped_library(args.backbone)
    if library is not None:
        tokens = {task: by_task[task]["tokens"] for task in args.tasks}
        with torch.no_grad():
            result["fresh_mixture"] = {"task": args.tasks[0], "sources": args.sources,
                                       **init_spread(tokens, library, args.sources, args.tasks[0])}  # fmt: skip
    return result


def report(result: dict[str, Any]) -> str:
    """The Markdown report of one measurement (its JSON alone)."""
    tasks = list(result["pooling"][POOLINGS[0]]["tasks"])
    lines = [f"# Input pooling spread on {result['backbone']}", "", f"Written by benchmarks/input_pooling.py; first {result['rows_per_task']} "
             "validation rows per task. Cosine: mean over pairs of inputs; varying: mean ‖x̂ − mean x̂‖ / ‖x̂‖.", "",
             "| pooling | task | pairwise cosine | varying part |", "|---|---|---:|---:|"]  # fmt: skip
    for how, entry in result["pooling"].items():
        lines += [
            f"| {how} | {t} | {s['pairwise_cosine']} | {s['varying_part']} |"
            for t, s in entry["tasks"].items()
        ]
    lines += [""] + [f"{how}: centroid cosine {tasks[0]}–{tasks[1]} (overall mean removed): "
                     f"{entry[f'centroid_cosine_{tasks[0]}_{tasks[1]}']}" for how, entry in result["pooling"].items()]  # fmt: skip
    if "fresh_mixture" in result:
        fresh = result["fresh_mixture"]
        lines += ["", f"A fresh mixture (5 seeds, no training) over {', '.join(fresh['sources'])} + target on {fresh['task']}: "
                  "input spread = per-prompt std of the weights over inputs; peak = mean largest weight.", "",
                  "| pooling / temperature | T | input spread | peak |", "|---|---:|---:|---:|"]  # fmt: skip
        lines += [
            f"| {k} | {v['T']} | {v['input_spread']} | {v['peak']} |"
            for k, v in fresh.items()
            if isinstance(v, dict)
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="HuggingFaceTB/SmolLM2-135M-Instruct")
    parser.add_argument("--tasks", nargs="+", default=["cb", "rte", "sst2"])
    parser.add_argument("--rows", type=int, default=100, help="validation rows per task (default 100)")
    parser.add_argument("--data-dir", default=str(DATA_DIR))
    parser.add_argument(
        "--library",
        type=Path,
        help="also measure a fresh mixture over these source prompts "
        "(default: prompts/<backbone>/ when shipped)",
    )
    parser.add_argument("--sources", nargs="+", default=["mnli", "qnli", "sst2"])
    parser.add_argument("--out", type=Path, default=results_dir("input_pooling"))
    parser.add_argument(
        "--report-only", action="store_true", help="measure nothing: the report of the backbone's JSON again"
    )
    args = parser.parse_args(argv)
    stem = args.out / f"input_pooling-{args.backbone.split('/')[-1].lower()}"
    json_path = stem.with_name(stem.name + ".json")
    if args.report_only:
        result = read_json(json_path, "Run the benchmark to write it again.")
    else:
        result = measure(args)
        write_json(json_path, result)
    text = report(result)
    storage.write_text(stem.with_name(stem.name + ".md"), text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
