"""The paper's few-shot claim on SmolLM2-135M-Instruct with the shipped source prompts, seed by seed.

    python benchmarks/reproduce_fewshot.py                 # the grid (hours on 2 CPU cores; resumable)
    python benchmarks/reproduce_fewshot.py --report-only   # report the cells finished so far
    python benchmarks/reproduce_fewshot.py --ablations attempt_mean   # then ATTEMPT with mean-pooled x̂ (k = 16)
    python benchmarks/reproduce_fewshot.py --ablations attempt_centred   # ATTEMPT with centred x̂ (k = 16)
    python benchmarks/reproduce_fewshot.py --tiny --out /tmp/x   # the tests' tiny causal LM (seconds)

ATTEMPT's strongest claim (Asai et al., EMNLP 2022, arXiv 2205.11961, few-shot table) is that the mixture of
source prompts helps most when the target has few examples. The grid: targets cb, boolq, rte; k = 16 and 32
examples per class; prompt tuning, SPoT (prompt tuning started from the single source prompt that scores best
on the target's validation rows as it is, untrained) and ATTEMPT (temperature "auto") in every cell; at k = 16
also ATTEMPT at the paper's T = d·e and LoRA. Each seed draws its own k-shot sample and initialisation
(`TrainConfig.seed`); the split seed is fixed, so every method and seed is tested on the same test rows (at
most TEST_LIMIT per task). Every method trains STEPS steps of BATCH examples and is evaluated once, at the end.

The report gives test mean ± std over seeds per cell and the paired difference ATTEMPT − PT and ATTEMPT − SPoT
per task and k (same seeds, so same k-shot samples), with a 95% t-interval over seeds; and the attention's
peak weight, entropy and spread across inputs per task at both temperatures. An ablation (--ablations) is paired
with ATTEMPT (T auto) over the same seeds.

Data: the mirror's BoolQ training pool is FewGLUE's 32 + 32 rows of the official train (27 false, 37 true);
CB's has 16 "neutral" rows. Cells whose k exceeds a class's pool take all of that class's rows
(`k_shot_allow_fewer`), and the report says which.

Every cell is its own folder under <out>/reproduce/fewshot-<backbone>/ (not committed): a finished cell is read
back, an interrupted one resumes from its checkpoint; only results.json, attention and predictions are kept.
A finished cell is also copied, without its input texts, to <out>/fewshot-state/<backbone>/ (committed, a few
KB per cell), and copied back by the next run: a session's files end with it, the grid takes several.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # reproduce.py, beside this script
from reproduce import data_overlay, slug  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BACKBONE = "HuggingFaceTB/SmolLM2-135M-Instruct"
LIBRARY = REPO / "prompts" / "smollm2-135m-instruct"
DATA_DIR = REPO.parent / "shared" / "data"
TARGETS = ("cb", "boolq", "rte")
KS = (16, 32)
METHODS = ("prompt_tuning", "spot", "attempt")
K16_METHODS = ("attempt_paper", "lora")  # only at k = 16
# --ablations, after the grid, at k = 16: ATTEMPT (T auto) with x̂ mean-pooled instead of max-pooled (max-pooled
# inputs are 0.96 cosine-alike: benchmarks/input_pooling.py), or with x̂ centred by the training inputs' mean
# (AttemptConfig.centre_inputs), to see whether the attention then varies per input and whether that helps
ABLATIONS = {"attempt_mean": {"pooling": "mean"}, "attempt_centred": {"centre_inputs": True}}
ATTEMPT_METHODS = ("attempt", "attempt_paper", *ABLATIONS)
# BoolQ's training pool in the mirror: FewGLUE's two 32-row samples of the official train, together
POOLS = {("aps/super_glue", "boolq"): ("train_fewglue32", "validation_fewglue32")}


@dataclass(frozen=True)
class Options:
    """One few-shot grid: what runs and how big every cell is."""

    backbone: str = BACKBONE
    library: Path = LIBRARY
    sources: tuple[str, ...] = (
        "mnli",
        "qnli",
        "sst2",
    )  # fixed, so a prompt added to the library later changes no cell
    targets: tuple[str, ...] = TARGETS
    ks: tuple[int, ...] = KS
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    steps: int = 60  # 60 x 8 = 480 examples: 10 epochs of a 16-shot binary task, 5 of a 32-shot 3-class one
    batch: int = 8
    prompt_lr: float = 0.01  # the shipped sources' learning rate (benchmarks/source_prompts.py)
    lora_lr: float = 1e-3
    test_limit: int = 300
    eval_limit: int = 64  # validation rows: the SPoT source choice and the end-of-run validation score
    max_source_length: int = 128
    split_seed: int = 0
    tiny: bool = False
    lr_overrides: dict[str, float] = field(default_factory=dict)
    ablations: tuple[str, ...] = ()  # of ABLATIONS: run after the grid, at k = 16


def methods_at(k: int) -> tuple[str, ...]:
    return METHODS + (K16_METHODS if k == 16 else ())


def fewshot_data(source: Path, overlay: Path) -> Path:
    """The mirror's links (reproduce.data_overlay) plus BoolQ's training pool written as its train split."""
    data_overlay(source, overlay)
    for (hub_id, config), parts in POOLS.items():
        train = overlay / hub_id / config / "train.jsonl"
        if not (source / hub_id / config / "train.jsonl").exists():
            train.unlink(missing_ok=True)
            lines = [
                line
                for part in parts
                for line in (source / hub_id / config / f"{part}.jsonl").read_text().splitlines()
            ]
            train.write_text("\n".join(lines) + "\n")
    return overlay


class FewShotGrid:
    """Runs (or reads back) the cells of one few-shot grid; one backbone load, a fresh copy per cell."""

    def __init__(self, options: Options, out: Path, data_dir: Path, log=print):
        self.options, self.log = options, log
        name = "tiny-llama" if options.tiny else slug(options.backbone)
        self.root = out / "reproduce" / f"fewshot-{name}"
        self.data_dir = fewshot_data(data_dir, self.root / "data")
        self.state = out / "fewshot-state" / name
        self.computed = self.reused = self.missing = 0
        restore(self.state, self.root)
        if options.tiny:
            from attempt.testing import build_backbone, build_tokenizer

            self._backbone, self.tokenizer, self.family = (
                build_backbone("causal"),
                build_tokenizer("causal"),
                "causal",
            )
        else:
            from attempt.backbones.resolve import load_backbone

            self._backbone, self.tokenizer, self.family = load_backbone(options.backbone)
        from attempt.prompts.library import PromptLibrary

        library = PromptLibrary(options.library)
        missing = [name for name in options.sources if name not in library]
        if missing:
            raise ValueError(
                f"{options.library} lacks the source prompt(s) {missing}: run benchmarks/source_prompts.py first."
            )
        self.sources = list(options.sources)
        self.prompt_length = library.get(self.sources[0]).length

    def config(
        self, method: str, task: str, k: int | None, seed: int, out: Path, sources: tuple[str, ...] = ()
    ):
        """The TrainConfig of one cell (method: a grid method name; attempt_paper = ATTEMPT at T = d·e)."""
        from attempt.config import TrainConfig

        o = self.options
        mode = "attempt" if method in ATTEMPT_METHODS else method
        attempt = {"prompt_length": self.prompt_length, **({"temperature": "paper"} if method == "attempt_paper" else {}),
                   **ABLATIONS.get(method, {})}  # fmt: skip
        lr = o.lr_overrides.get(method, o.lora_lr if method == "lora" else o.prompt_lr)
        return TrainConfig(
            mode=mode, backbone="tiny-llama" if o.tiny else o.backbone, tasks=(task,), source_prompts=sources,
            library=str(o.library), output_dir=str(out), data_dir=str(self.data_dir), attempt=attempt,
            max_steps=o.steps, batch_size=o.batch, eval_batch_size=32, learning_rate=lr, warmup_steps=o.steps // 10,
            seed=seed, split_seed=o.split_seed, max_source_length=o.max_source_length, eval_every=0, k_shot=k,
            k_shot_allow_fewer=True, eval_limit=o.eval_limit, test_limit=o.test_limit, eval_method="rank",
        )  # fmt: skip

    def cell_sources(self, method: str, task: str, spot: dict[str, Any]) -> tuple[str, ...]:
        if method in ATTEMPT_METHODS:
            return tuple(self.sources)
        return (spot[task]["chosen"],) if method == "spot" else ()

    def run_cell(self, key: dict[str, Any], config, compute: bool) -> dict[str, Any]:
        """Train one cell, or read back its results.json; returns the cell record (key + results)."""
        from attempt.training.loop import train

        out = Path(config.output_dir)
        record = {**key, "output_dir": str(out.relative_to(self.root))}
        if (out / "results.json").is_file():
            self.reused += 1
            return {**record, **read_cell(out), "reused": True}
        if not compute:
            self.missing += 1
            return {**record, "missing": True}
        self.log(f"run  {json.dumps(key)}")
        started = time.time()
        train(config, model=copy.deepcopy(self._backbone), tokenizer=self.tokenizer, progress=False)
        for name in ("checkpoint", "best"):  # the weights: the cell's numbers are what is kept
            shutil.rmtree(out / name, ignore_errors=True)
        self.computed += 1
        keep(out, self.state / out.relative_to(self.root))
        result = read_cell(out)
        self.log(f"     test {result['test']:.2f} ({time.time() - started:.0f} s)")
        return {**record, **result, "reused": False}

    def spot_sources(self, compute: bool) -> dict[str, dict[str, Any]]:
        """Per target, every source prompt's validation score as it is (untrained), and the best one: SPoT's
        source. Cached in spot_sources.json (a few minutes of evaluation)."""
        from attempt.data.splits import load_task_data
        from attempt.evaluation.evaluate import evaluate
        from attempt.runs.build import build_model

        path = self.root / "spot_sources.json"
        chosen = json.loads(path.read_text()) if path.is_file() else {}
        for task in self.options.targets:
            if task in chosen or not compute:
                continue
            scores = {}
            for name in self.sources:
                config = self.config("spot", task, None, 0, self.root / "spot", (name,))
                rows = {task: load_task_data(config)[task]["validation"]}
                model = build_model(config, self._backbone, self.tokenizer, self.family)
                scores[name] = evaluate(
                    model, self.tokenizer, rows, batch_size=32, max_source_length=config.max_source_length
                )["average"]
            chosen[task] = {"chosen": max(scores, key=scores.get), "validation_untrained": scores}
            self.log(f"spot source for {task}: {chosen[task]}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(chosen, indent=2) + "\n")
            keep_file(path, self.state / path.name)
        return chosen

    def run_all(self, compute: bool = True) -> dict[str, Any]:
        spot = self.spot_sources(compute)
        order = [
            (k, task, seed, method)
            for k in self.options.ks  # k = 16 first: the cells every comparison needs
            for task in self.options.targets
            for seed in self.options.seeds
            for method in methods_at(k)
        ]
        order += [(16, task, seed, method) for method in self.options.ablations  # after the grid
                  for task in self.options.targets for seed in self.options.seeds]  # fmt: skip
        cells = []
        for k, task, seed, method in order:
            if method == "spot" and task not in spot:
                continue
            key = {"method": method, "task": task, "k": k, "seed": seed}
            out = self.root / "cells" / method / task / f"k{k}_s{seed}"
            config = self.config(method, task, k, seed, out, self.cell_sources(method, task, spot))
            cells.append(self.run_cell(key, config, compute))
        return {"cells": cells, "spot_sources": spot}


def attention_reach(library: Path, names: list[str]) -> dict[str, Any]:
    """How far the attention can move at the start of a run (target = a copy of the first source, LayerNorm
    at identity), at each named temperature: T, and the most weight any input can give one prompt
    (`AttentionalMixture.max_attention_weight`). The original release's T5-base ReCoRD prompt beside it, when
    ../shared/original-prompts has it: the paper's own scale of keys."""
    import torch

    from attempt.config import AttemptConfig
    from attempt.mixture import AttentionalMixture
    from attempt.prompts.library import PromptLibrary, read_original_prompt

    def reach(prompts: torch.Tensor) -> dict[str, Any]:  # prompts: (t, m, d)
        out = {}
        for temperature in ("paper", "sqrt_d", "auto"):
            config = AttemptConfig(prompt_length=prompts.shape[1], temperature=temperature)
            mixture = AttentionalMixture(config, prompts.shape[-1], prompts, prompts[0])
            out[temperature] = {"T": mixture.temperature, "max_weight": mixture.max_attention_weight()}
        return {**out, "uniform": 1 / (prompts.shape[0] + 1)}

    prompts = torch.stack([p.embeddings for p in PromptLibrary(library).load(names)])
    result = {"this backbone": reach(prompts)}
    original = REPO.parent / "shared" / "original-prompts" / "record_prefix_embeddings.t5-base.pt"
    if original.is_file():
        result["T5-base ReCoRD (original release)"] = reach(read_original_prompt(original)[None])
    return result


KEPT = ("results.json", "attention.json", "metrics.jsonl", "train_config.json")


def keep(cell: Path, state: Path) -> None:
    """Copy a finished cell's small files to its committed state folder; its predictions without the input
    texts (which only repeat the data) and with attention weights to 6 decimals."""
    state.mkdir(parents=True, exist_ok=True)
    for name in KEPT:
        if (cell / name).is_file():
            keep_file(cell / name, state / name)
    predictions = cell / "test_predictions.jsonl"
    if predictions.is_file():
        rows = []
        for line in predictions.read_text().splitlines():
            row = {k: v for k, v in json.loads(line).items() if k != "source"}
            if row.get("attention_weights"):
                row["attention_weights"] = {n: round(w, 6) for n, w in row["attention_weights"].items()}
            rows.append(json.dumps(row))
        write_atomic(state / predictions.name, "\n".join(rows) + "\n")


def keep_file(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(target, source.read_text())


def write_atomic(path: Path, text: str) -> None:
    """Write beside, then rename: a session cut off mid-write leaves the old file or none, never half of one."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.replace(path)


def restore(state: Path, root: Path) -> int:
    """Copy kept cells (and spot_sources.json) back into the run tree where that tree lacks them; returns
    how many cells came back. A kept cell is finished (it has results.json), so it is read back, not rerun."""
    if not state.is_dir():
        return 0
    restored = 0
    for results in state.rglob("results.json"):
        cell = root / results.parent.relative_to(state)
        if not (cell / "results.json").is_file():
            shutil.rmtree(
                cell, ignore_errors=True
            )  # an interrupted attempt at the cell: the kept one is whole
            shutil.copytree(results.parent, cell)
            restored += 1
    spot = state / "spot_sources.json"
    if spot.is_file() and not (root / spot.name).is_file():
        keep_file(spot, root / spot.name)
    return restored


def stash(root: Path, state: Path) -> int:
    """Keep every finished cell of the run tree (cells run by a version of this script that did not)."""
    kept = 0
    for results in (root / "cells").rglob("results.json"):
        keep(results.parent, state / results.parent.relative_to(root))
        kept += 1
    if (root / "spot_sources.json").is_file():
        keep_file(root / "spot_sources.json", state / "spot_sources.json")
    return kept


def read_cell(out: Path) -> dict[str, Any]:
    """A finished cell's numbers: test / validation averages, and its attention statistics over test rows."""
    results = json.loads((out / "results.json").read_text())
    record = {"test": results["test"]["average"], "validation": results["validation"]["average"],
              "test_metrics": results["test"], "wall_time_s": results["wall_time_s"]}  # fmt: skip
    weights = []
    predictions = out / "test_predictions.jsonl"
    if predictions.is_file():
        for line in predictions.read_text().splitlines():
            row = json.loads(line).get("attention_weights")
            if row:
                weights.append(row)
    if weights:
        record["attention"] = attention_stats(weights)
    return record


def attention_stats(rows: list[dict[str, float]]) -> dict[str, Any]:
    """Peak weight and entropy of the attention, averaged over examples; the spread over examples of each
    prompt's weight (0 when the attention ignores the input); the mean weight per prompt."""
    names = list(rows[0])
    peaks = [max(r.values()) for r in rows]
    entropies = [-sum(w * math.log(w) for w in r.values() if w > 0) for r in rows]
    means = {n: sum(r[n] for r in rows) / len(rows) for n in names}
    spread = {n: math.sqrt(sum((r[n] - means[n]) ** 2 for r in rows) / len(rows)) for n in names}
    return {"peak": sum(peaks) / len(peaks), "max_peak": max(peaks), "entropy": sum(entropies) / len(entropies),
            "uniform_entropy": math.log(len(names)), "input_spread": sum(spread.values()) / len(spread),
            "mean_weights": means}  # fmt: skip


def paired(cells: list[dict[str, Any]], a: str, b: str, task: str, k: int) -> dict[str, Any] | None:
    """Method a − method b on the seeds both finished (same k-shot sample per seed): mean and 95% t-interval."""
    from scipy import stats

    score = {
        (c["method"], c["seed"]): c["test"]
        for c in cells
        if c["task"] == task and c["k"] == k and "test" in c
    }
    seeds = sorted(s for (m, s) in score if m == a and (b, s) in score)
    if len(seeds) < 2:
        return None
    diffs = [score[(a, s)] - score[(b, s)] for s in seeds]
    mean = sum(diffs) / len(diffs)
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1))
    half = stats.t.ppf(0.975, len(diffs) - 1) * sd / math.sqrt(len(diffs))
    verdict = "a > b" if mean - half > 0 else ("a < b" if mean + half < 0 else "no difference at 95%")
    return {"a": a, "b": b, "task": task, "k": k, "seeds": seeds, "diffs": diffs, "mean": mean,
            "ci95": [mean - half, mean + half], "verdict": verdict}  # fmt: skip


def summarise(cells: list[dict[str, Any]], options: Options) -> dict[str, Any]:
    """Mean ± std per (task, k, method), the paired differences, and the attention per (task, method)."""
    table: dict[str, Any] = {}
    for c in cells:
        if "test" in c:
            table.setdefault(f"{c['task']} k={c['k']}", {}).setdefault(c["method"], []).append(c["test"])
    table = {row: {m: {"mean": sum(v) / len(v), "std": _std(v), "n": len(v)} for m, v in methods.items()}
             for row, methods in table.items()}  # fmt: skip
    pairs = [
        paired(cells, "attempt", b, t, k)
        for k in options.ks
        for t in options.targets
        for b in ("prompt_tuning", "spot")
    ]
    pairs += [
        paired(cells, "attempt", b, t, 16) for b in K16_METHODS for t in options.targets
    ]  # T auto vs d·e; vs LoRA
    pairs += [paired(cells, a, "attempt", t, 16) for a in options.ablations for t in options.targets]
    attention: dict[str, Any] = {}
    for method in ATTEMPT_METHODS:
        for task in options.targets:
            stats = [
                c["attention"]
                for c in cells
                if c["method"] == method and c["task"] == task and "attention" in c
            ]
            if stats:
                attention[f"{task} {method}"] = {
                    key: sum(s[key] for s in stats) / len(stats)
                    for key in ("peak", "max_peak", "entropy", "uniform_entropy", "input_spread")
                }
    summary = {"table": table, "paired": [p for p in pairs if p], "attention": attention}
    return {**summary, "claims": claims(summary)}


def _std(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


LABELS = {"prompt_tuning": "PT", "spot": "SPoT", "attempt": "ATTEMPT (T auto)", "attempt_paper": "ATTEMPT (T = d·e)",
          "lora": "LoRA", "attempt_mean": "ATTEMPT (mean-pooled x̂)",
          "attempt_centred": "ATTEMPT (centred x̂)"}  # fmt: skip


CLAIMS = (  # (claim, method, baseline): each answered from the paired cells that compare the two
    ("ATTEMPT beats prompt tuning few-shot (the paper's claim)", "attempt", "prompt_tuning"),
    ("ATTEMPT beats SPoT, its best single source (the paper's claim)", "attempt", "spot"),
    ("T auto beats the paper's T = d·e on this backbone (the library's default)", "attempt", "attempt_paper"),
    ("ATTEMPT beats LoRA few-shot (the paper compares with full fine-tuning)", "attempt", "lora"),
)
SPREAD_THAT_VARIES = (
    0.05  # a prompt's weight varies over inputs by at least this (mean std) to count as chosen per input
)


def claims(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """A verdict per claim from the paired cells: how many (task, k) show the method ahead, behind, or no
    difference at 95%; and whether any trained attention gives different inputs different weights."""
    verdicts = []
    for claim, a, b in CLAIMS:
        pairs = [p for p in summary["paired"] if (p["a"], p["b"]) == (a, b)]
        count = {v: sum(p["verdict"] == v for p in pairs) for v in ("a > b", "a < b", "no difference at 95%")}
        verdicts.append({"claim": claim, "a": a, "b": b, "pairs": len(pairs), "ahead": count["a > b"],
                         "behind": count["a < b"], "verdict": _claim_verdict(count, len(pairs)),
                         "cells": ", ".join(f"{p['task']} k={p['k']} {p['mean']:+.1f}" for p in pairs)})  # fmt: skip
    spreads = {row: a["input_spread"] for row, a in summary["attention"].items() if row.endswith(" attempt")}
    largest = max(spreads.values(), default=None)
    verdicts.append({"claim": "The attention gives different inputs different weights (the paper's picture)",
                     "verdict": "not measured" if largest is None else
                     ("holds" if largest >= SPREAD_THAT_VARIES else f"does not hold: input spread below {SPREAD_THAT_VARIES}"),
                     "cells": ", ".join(f"{row.split()[0]} spread {v:.4f}" for row, v in spreads.items())})  # fmt: skip
    return verdicts


def _claim_verdict(count: dict[str, int], n: int) -> str:
    ahead, behind = count["a > b"], count["a < b"]
    if n == 0:
        return "not measured"
    if ahead == n:
        return "holds"
    if ahead and behind:
        return f"mixed: ahead in {ahead}, behind in {behind} of {n}"
    if ahead:
        return f"partly: ahead in {ahead} of {n}, no difference in the rest"
    if behind:
        return f"does not hold: behind in {behind} of {n}, no difference in the rest"
    return f"not shown: no difference at 95% in all {n}"


def majority_score(task: str, rows: list[dict[str, Any]]) -> float:
    """The task's score (its metrics' average) when every test row gets the most frequent label: the floor
    a method must clear to have learned anything."""
    from collections import Counter

    from attempt.tasks import get_task

    definition = get_task(task)
    top = Counter(definition.label_of(r) for r in rows).most_common(1)[0][0]
    return definition.compute_metrics([top] * len(rows), rows)["average"]


def report(results: dict[str, Any]) -> str:
    """The Markdown report: protocol, the score table, the paired differences, the attention."""
    o, summary = results["options"], results["summary"]
    shown = [m for m in LABELS if m not in ABLATIONS or m in o.get("ablations", ())]
    status = (
        "complete"
        if not results["cells_missing"]
        else f"PARTIAL: {results['cells_missing']} cells not run yet"
    )
    lines = [f"# Few-shot ATTEMPT on {o['backbone']} ({status})", "",
             f"{o['steps']} steps of {o['batch']} examples per cell, prompt lr {o['prompt_lr']} (LoRA {o['lora_lr']}), "
             f"seeds {o['seeds']} (each its own k-shot sample and initialisation), the same test rows for every "
             f"method and seed (at most {o['test_limit']} per task: {results['test_rows']}). Sources: "
             f"{', '.join(results['sources'])}. SPoT's source per target (best untrained validation score): "
             + ", ".join(f"{t} → {v['chosen']}" for t, v in results["spot_sources"].items()) + ".", "",
             "Test score, mean ± std over seeds (n); majority = the score of always answering the test rows' most "
             "frequent label:", "",
             "| task | majority | " + " | ".join(LABELS[m] for m in shown) + " |", "|---|---:|" + "---:|" * len(shown)]  # fmt: skip
    for row, methods in summary["table"].items():  # row: "<task> k=<k>"
        cells = [
            f"{methods[m]['mean']:.1f} ± {methods[m]['std']:.1f} ({methods[m]['n']})" if m in methods else "–"
            for m in shown
        ]
        lines.append(f"| {row} | {results['majority'][row.split(' ')[0]]:.1f} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Paired difference method − baseline over the same seeds, 95% t-interval:",
        "",
        "| task | k | method | baseline | mean | 95% CI | seeds | verdict |",
        "|---|---:|---|---|---:|---|---:|---|",
    ]
    for p in summary["paired"]:
        lines.append(
            f"| {p['task']} | {p['k']} | {LABELS[p['a']]} | {LABELS[p['b']]} | {p['mean']:+.1f} | "
            f"[{p['ci95'][0]:+.1f}, {p['ci95'][1]:+.1f}] | {len(p['seeds'])} | {_verdict(p)} |"
        )
    lines += [
        "",
        "Verdict per claim (ahead / behind: (task, k) cells where the 95% interval excludes 0):",
        "",
        "| claim | verdict | ahead | behind | cells (mean difference) |",
        "|---|---|---:|---:|---|",
    ]
    for c in summary["claims"]:
        counts = f"{c['ahead']} | {c['behind']}" if "pairs" in c else "– | –"
        lines.append(f"| {c['claim']} | {c['verdict']} | {counts} | {c['cells']} |")
    lines += [
        "",
        "Attention over the test rows (mean over seeds): peak = mean of each example's largest weight; "
        "entropy against the uniform one; input spread = mean std over examples of a prompt's weight "
        "(0: the same weights for every input).",
        "",
        "| task, method | peak | largest | entropy (uniform) | input spread |",
        "|---|---:|---:|---:|---:|",
    ]
    for row, a in summary["attention"].items():
        lines.append(
            f"| {row} | {a['peak']:.3f} | {a['max_peak']:.3f} | {a['entropy']:.3f} ({a['uniform_entropy']:.3f}) | "
            f"{a['input_spread']:.4f} |"
        )
    lines += [
        "",
        "How far the attention can move at the start (`max_attention_weight`: the most weight any input "
        "can give one prompt, LayerNorm at identity):",
        "",
        "| prompts | uniform | T = d·e | T = √d | T auto |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in results["attention_reach"].items():
        lines.append(
            f"| {name} | {r['uniform']:.3f} | "
            + " | ".join(
                f"{r[t]['max_weight']:.3f} (T = {r[t]['T']:.3g})" for t in ("paper", "sqrt_d", "auto")
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def _verdict(pair: dict[str, Any]) -> str:
    """The paired verdict in words: which method wins at 95%, or that the interval holds 0."""
    method, baseline = LABELS[pair["a"]], LABELS[pair["b"]]
    return {"a > b": f"{method} > {baseline}", "a < b": f"{method} < {baseline}"}.get(
        pair["verdict"], "no difference at 95%"
    )


def run(
    options: Options,
    out: Path,
    data_dir: Path = DATA_DIR,
    compute: bool = True,
    threads: int | None = None,
    log=print,
) -> dict[str, Any]:
    """Run (or read back) the grid and write reproduce-fewshot-<backbone>.{json,md} under `out`."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    grid = FewShotGrid(options, out, data_dir, log)
    ran = grid.run_all(compute)
    from attempt.data.splits import load_task_data

    tests = {
        t: load_task_data(grid.config("prompt_tuning", t, 16, 0, out))[t]["test"] for t in options.targets
    }
    test_rows = {t: len(rows) for t, rows in tests.items()}
    results = {"options": {k: (str(v) if isinstance(v, Path) else v) for k, v in options.__dict__.items()},
               "sources": grid.sources, "spot_sources": ran["spot_sources"], "cells": ran["cells"],
               "cells_computed": grid.computed, "cells_reused": grid.reused, "cells_missing": grid.missing,
               "test_rows": test_rows, "majority": {t: majority_score(t, rows) for t, rows in tests.items()},
               "summary": summarise(ran["cells"], options),
               "attention_reach": attention_reach(options.library, grid.sources)}  # fmt: skip
    stem = out / f"reproduce-fewshot-{'tiny' if options.tiny else slug(options.backbone)}"
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    stem.with_suffix(".md").write_text(report(results))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=TARGETS)
    parser.add_argument("--ks", nargs="+", type=int, default=list(KS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny causal LM and a random library")
    parser.add_argument("--library", type=Path, default=LIBRARY)
    parser.add_argument("--report-only", action="store_true", help="train nothing: report the finished cells")
    parser.add_argument(
        "--ablations",
        nargs="*",
        default=[],
        choices=sorted(ABLATIONS),
        help="also run these at k = 16, after the grid (attempt_mean: x̂ mean-pooled; "
        "attempt_centred: x̂ minus the training inputs' mean, AttemptConfig.centre_inputs)",
    )
    parser.add_argument(
        "--stash", action="store_true", help="train nothing: keep the finished cells in fewshot-state/"
    )
    args = parser.parse_args(argv)
    if args.stash:
        name = "tiny-llama" if args.tiny else slug(BACKBONE)
        kept = stash(args.out / "reproduce" / f"fewshot-{name}", args.out / "fewshot-state" / name)
        print(f"kept {kept} finished cells in {args.out / 'fewshot-state' / name}")
        return 0
    options = Options(
        library=args.library,
        targets=tuple(args.targets),
        ks=tuple(args.ks),
        seeds=tuple(range(args.seeds)),
        tiny=args.tiny,
        ablations=tuple(args.ablations),
    )
    results = run(options, args.out, args.data_dir, compute=not args.report_only, threads=args.threads)
    print(report(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
