"""The report of benchmarks/reproduce_fewshot.py: attention statistics, paired differences, verdicts per claim
and the Markdown report. Pure functions of the cell records, so a report can be rebuilt from the grid's JSON."""

from __future__ import annotations

import math
from typing import Any

# the grid's methods, in the order of the report's columns
METHODS = ("prompt_tuning", "spot", "attempt")
K16_METHODS = ("attempt_paper", "lora")  # only at k = 16
# --ablations, after the grid, at k = 16: ATTEMPT (T auto) with x̂ mean-pooled instead of max-pooled (max-pooled
# inputs are 0.96 cosine-alike: benchmarks/input_pooling.py), or with x̂ centred by the training inputs' mean
# (AttemptConfig.centre_inputs), to see whether the attention then varies per input and whether that helps
ABLATIONS = {"attempt_mean": {"pooling": "mean"}, "attempt_centred": {"centre_inputs": True}}
ATTEMPT_METHODS = ("attempt", "attempt_paper", *ABLATIONS)


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


def summarise(cells: list[dict[str, Any]], options: Any) -> dict[str, Any]:
    """Mean ± std per (task, k, method), the paired differences, and the attention per (task, method).
    `options`: the grid's (`reproduce_fewshot.Options`): its ks, targets and ablations."""
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
