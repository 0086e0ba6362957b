"""The report of benchmarks/main_table.py (issue 22): the pilot, the scores per task and method beside the
paper's T5-base numbers, paired differences, a verdict per claim, the attention and the cost per cell.

A pure function of the table's cells file (cells-<backbone>.jsonl) and the paper numbers transcribed below:
`write` reads nothing else (no run folders), so running ``python -m benchmarks.main_table --report-only`` twice
writes byte-identical files. What the table plans is fixed here (`PLAN_TARGETS`, `PLAN_METHODS`: the issue's
table), not read from a command line, so the list of missing cells depends on the cells file alone.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import warnings
from pathlib import Path
from typing import Any

from attempt.tasks import get_task
from attempt.tasks import metrics as task_metrics
from attempt.utils import storage
from benchmarks.common import REPO, read_records, shown, write_json
from benchmarks.reproduce_fewshot import example_columns
from benchmarks.reproduce_fewshot_report import _claim_verdict, _std

GLUE = ("cola", "stsb", "mrpc", "rte", "mnli", "qqp", "qnli", "sst2")
SUPERGLUE = ("cb", "copa", "multirc", "wic", "wsc", "boolq")
PLAN_TARGETS = GLUE + SUPERGLUE
# what the table runs; full fine-tuning ("finetune") is optional: reported when it has cells, never
# listed as missing
PLAN_METHODS = ("prompt_tuning", "spot", "attempt", "attempt_m", "lora")
METHODS = (*PLAN_METHODS, "finetune")  # the order of the report's columns
LABELS = {"prompt_tuning": "PT", "spot": "SPoT", "attempt": "ATTEMPT", "attempt_m": "ATTEMPT-m", "lora": "LoRA",
          "finetune": "fine-tuning"}  # fmt: skip
JOINT = "glue"  # the task name of an ATTEMPT-m record: one run over the GLUE targets
# the paper's metric per task (the T5-base table's caption: Pearson for STS-B, F1 for MultiRC, Matthews
# correlation for CoLA, accuracy for everything else, MRPC and QQP included); the key in a record's metrics
PAPER_METRIC = {"stsb": "pearson", "multirc": "f1a", "cola": "matthews_correlation"}
METRIC_NAMES = {"accuracy": "accuracy", "pearson": "Pearson", "f1a": "F1 (answers)",
                "matthews_correlation": "Matthews"}  # fmt: skip
# the paper's averages: GLUE over its 8 tasks, SuperGLUE over 5 (COPA is not in the paper's table)
GROUPS = {"GLUE": GLUE, "SuperGLUE": ("multirc", "boolq", "wic", "wsc", "cb")}

PAPER_SOURCE = "../shared/paper_numbers.md"
# The paper's T5-base numbers, transcribed from ../shared/paper_numbers.md, section 1 (ATTEMPT Table 1 as
# reprinted in ACCEPT / ULPT): tables 1a (Fine-tuning (FT), LoRA, Prompt tuning (PT), SPoT, ATTEMPT) and 1b
# (ATTEMPT-m). Quote them as "as reprinted in ACCEPT / ULPT". tests/test_main_table.py checks this dict
# against that file when it is there.
PAPER_TASKS = ("mnli", "qqp", "qnli", "sst2", "stsb", "mrpc", "rte", "cola", "multirc", "boolq", "wic", "wsc", "cb")  # fmt: skip
PAPER_ROWS = {  # method: (the row's name in the file, its 13 task cells in PAPER_TASKS order, GLUE avg, SG avg)
    "finetune": ("Fine-tuning (FT)", (86.8, 91.6, 93.0, 94.6, 89.7, 90.2, 71.9, 61.8, 72.8, 81.1, 70.2, 59.6, 85.7), 84.9, 73.9),
    "lora": ("LoRA", (86.3, 89.0, 93.2, 94.3, 90.9, 90.1, 75.5, 63.3, 72.6, 81.3, 68.3, 67.3, 92.9), 85.3, 76.5),
    "prompt_tuning": ("Prompt tuning (PT)", (81.3, 89.7, 92.8, 90.9, 89.5, 68.1, 54.7, 10.6, 58.7, 61.7, 48.9, 51.9, 67.9), 72.2, 57.8),
    "spot": ("SPoT", (85.4, 90.1, 93.0, 93.4, 90.0, 79.7, 69.8, 57.1, 74.0, 77.2, 67.0, 50.0, 46.4), 82.3, 62.9),
    "attempt": ("ATTEMPT", (84.3, 90.3, 93.0, 93.2, 89.7, 85.7, 73.4, 57.4, 74.4, 78.8, 66.8, 53.8, 78.6), 83.4, 70.5),
    "attempt_m": ("ATTEMPT-m", (83.8, 90.0, 93.1, 93.7, 90.8, 86.1, 79.9, 64.3, 74.4, 78.5, 66.5, 69.2, 82.1), 85.2, 74.1),
}  # fmt: skip
PAPER = {method: dict(zip(PAPER_TASKS, row[1], strict=True)) for method, row in PAPER_ROWS.items()}
PAPER_AVERAGES = {method: {"GLUE": row[2], "SuperGLUE": row[3]} for method, row in PAPER_ROWS.items()}

CLAIMS = (  # (claim, method, baseline, test): each answered per task from the paired seeds
    ("ATTEMPT > PT", "attempt", "prompt_tuning", "greater"),
    ("ATTEMPT ≥ SPoT", "attempt", "spot", "not_less"),
    ("ATTEMPT within 1 point of fine-tuning (LoRA)", "attempt", "lora", "within"),
    ("ATTEMPT within 1 point of fine-tuning (full)", "attempt", "finetune", "within"),
    ("ATTEMPT-m ≥ ATTEMPT", "attempt_m", "attempt", "not_less"),
)
PAIRS = tuple((a, b) for _, a, b, _ in CLAIMS)
WITHIN = 1.0  # points: "within 1 point of fine-tuning"
NOT_MEASURED = "not measured yet"
# The precision of the table's cells: "bf16-train" trains in bf16 autocast (TrainConfig.mixed_precision="bf16",
# about 2x faster here) and scores every row, step 0 included, in float32 (eval_in_float32): scored in bf16, a
# trained prompt's answers changed on 1-6% of rows, near ties, moving accuracy by up to 3 points
# (benchmarks/precision.py). Cells of another precision (the first session's float32 cells, one cell with bf16
# scoring too) stay in the cells file: left out of every table and verdict, compared with their twins in the
# Precision section.
PRECISION = "bf16-train"
# Cells record the commit of their last session since the training step runs its LM head on the label positions
# only (loss_only, commit 4500840): the same loss and gradients, fewer minutes. The cost section counts both kinds.
LABEL_HEAD = "commit 4500840"
MIXED_PRECISIONS = ("no", "bf16", "bf16-train")
PRECISION_NAMES = {
    "no": "float32",
    "bf16": "bf16 training and scoring",
    "bf16-train": "bf16 training, float32 scoring",
}


def precision_of(record: dict[str, Any]) -> str:
    """A cell's mixed precision; "no" (float32) for the records written before cells recorded it."""
    return record.get("mixed_precision", "no")


def seeds_of(task: str) -> tuple[int, ...]:
    """The seeds the table runs for `task` (main_table.seeds_of; ATTEMPT-m: three)."""
    from benchmarks.main_table import seeds_of

    return (0, 1, 2) if task == JOINT else seeds_of(task)


def metric_of(task: str) -> str:
    return PAPER_METRIC.get(task, "accuracy")


def single_task_cell(record: dict[str, Any]) -> bool:
    """Whether a record is a cell of one plan task: ATTEMPT-m's records (task "glue") keep the test rows of its
    8 GLUE tasks in one list without each row's task, so their rows cannot be told apart per task."""
    return (
        record.get("kind") == "cell"
        and record["task"] in PLAN_TARGETS
        and record["method"] in METHODS
        and record["method"] != "attempt_m"
    )


# -- reading the cells --------------------------------------------------------------------------------------
def scores(records: list[dict[str, Any]]) -> dict[str, Any]:
    """{(method, task): {seed: {"final", "step0", "minutes", "one_answer"}}} on the paper's metric (and the
    answer of a cell that gave every test row the same one, `one_answer`), from the cell records of
    the plan (an ATTEMPT-m record gives one entry per GLUE task); and the records left out, counted."""
    out: dict[tuple[str, str], dict[int, dict[str, float]]] = {}
    ignored: dict[str, int] = {}
    for r in records:
        if r.get("kind") != "cell":
            continue
        method, task, seed = r["method"], r["task"], r["seed"]
        tasks = GLUE if method == "attempt_m" and task == JOINT else (task,)
        if (
            method not in METHODS
            or (method == "attempt_m") != (task == JOINT)
            or task not in (*PLAN_TARGETS, JOINT)
        ):
            why = f"{method} on {task}" + (
                " (ATTEMPT-m runs once, as task 'glue')" if method == "attempt_m" else ""
            )
            ignored[why] = ignored.get(why, 0) + 1
            continue
        for t in tasks:
            out.setdefault((method, t), {})[seed] = {
                "final": r["test_metrics"][t][metric_of(t)], "step0": r["step0"][t][metric_of(t)],
                "minutes": r["cell_time_s"] / 60, "one_answer": one_answer(r) if single_task_cell(r) else None}  # fmt: skip
    return {"scores": out, "ignored": ignored}


def one_answer(record: dict[str, Any]) -> Any:
    """The answer every test prediction of a cell is, or None (several answers, or no test rows kept): such a
    cell's score is a constant's, whatever it learned."""
    predictions = example_columns(record.get("examples") or []).get("prediction", [])
    return predictions[0] if predictions and len(set(predictions)) == 1 else None


# -- what a constant answer scores ----------------------------------------------------------------------------
def constants(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What one fixed answer scores per task, from the test references of the task's cells.

    The cells of a task are tested on the same rows in the same order, so their (idx, reference) lists must be
    equal: when they are not, none is picked (the constant would be of rows some cell was not tested on).

    Args:
        records: the records of a cells file, at the table's precision.

    Returns:
        {task: `constant_score`'s dict with "rows" (test rows) and "cells" (records read)}, for each plan task
        with a single-task cell; "score" None and "why" naming the cells of each list when they disagree.
    """
    found: dict[str, dict[str, list[str]]] = {}  # task: {the rows, as JSON: the cells with them}
    for r in records:
        if single_task_cell(r):
            columns = example_columns(r.get("examples") or [])
            references = columns.get("reference", [])
            rows = list(zip(columns.get("idx") or [None] * len(references), references, strict=True))
            cell = f"{LABELS[r['method']]} seed {r['seed']}"
            found.setdefault(r["task"], {}).setdefault(json.dumps(rows, sort_keys=True), []).append(cell)
    out = {}
    for task in PLAN_TARGETS:
        if task not in found:
            continue
        versions, cells = found[task], sum(len(c) for c in found[task].values())
        if len(versions) > 1:
            why = "its cells' test references disagree (" + "; ".join(
                f"{', '.join(c)}: {len(json.loads(rows))} rows" for rows, c in versions.items()) + ")"  # fmt: skip
            out[task] = {"score": None, "best": [], "candidates": 0, "undefined": [], "rows": None, "cells": cells,
                         "why": why}  # fmt: skip
            continue
        references = [reference for _, reference in json.loads(next(iter(versions)))]
        out[task] = {**constant_score(task, references), "rows": len(references), "cells": cells}
    return out


def constant_score(task: str, references: list[Any]) -> dict[str, Any]:
    """The best score on the paper's metric that one answer given to every row gets, over the answers there.

    Scored by the library's metric (`attempt.tasks.metrics`) after the task's own `parse_prediction`, as the
    cells' predictions were, so the number is comparable with theirs.

    Args:
        task: a plan task.
        references: its test rows' references as the records keep them (label words; scores for STS-B).

    Returns:
        "score" (None when no answer gets one), "best" (the answers that get it, sorted), "candidates" (answers
        tried), "undefined" (answers the metric scored NaN) and "why" (the reason when "score" is None).
    """
    metric, answers = metric_of(task), sorted(set(references), key=str)
    blank = {"score": None, "best": [], "candidates": len(answers), "undefined": []}
    if not references:
        return {**blank, "why": "its cells kept no test rows"}
    spec = get_task(task)
    labels = [spec.parse_prediction(r) for r in references]
    try:
        with warnings.catch_warnings():  # scipy warns of a constant input: here it is one by design
            warnings.simplefilter("ignore")
            scored = {a: task_metrics.compute(metric, [spec.parse_prediction(a)] * len(labels), labels)
                      for a in answers}  # fmt: skip
    except ValueError as error:  # e.g. a metric that needs what a record does not keep (MultiRC EM's groups)
        return {**blank, "why": f"{metric} cannot score these rows: {error}"}
    # NaN is what the metric returned, not a score: kept apart (JSON has no NaN), the best taken over the rest
    undefined = [a for a in answers if math.isnan(scored[a])]
    defined = {a: v for a, v in scored.items() if a not in undefined}
    if not defined:
        return {**blank, "undefined": undefined, "why": f"{metric} is NaN for every constant answer"}
    best = max(defined.values())
    return {"score": best, "best": [a for a in defined if defined[a] == best], "candidates": len(answers),
            "undefined": undefined, "why": None}  # fmt: skip


def finished(entry: dict[int, Any], task: str, method: str) -> bool:
    """Whether every seed the plan runs for (method, task) has its record."""
    return set(seeds_of(JOINT if method == "attempt_m" else task)) <= set(entry)


def mean_sd(values: list[float]) -> dict[str, Any]:
    return {"mean": sum(values) / len(values), "sd": _std(values), "n": len(values), "values": values}


def paired(a: dict[int, dict[str, float]], b: dict[int, dict[str, float]]) -> dict[str, Any] | None:
    """Method a − method b on the final scores of the seeds both finished (paired by seed): the mean, and a
    95% t-interval over seeds when there are at least 2; None when no seed is shared."""
    from scipy import stats

    seeds = sorted(set(a) & set(b))
    if not seeds:
        return None
    diffs = [a[s]["final"] - b[s]["final"] for s in seeds]
    mean = sum(diffs) / len(diffs)
    if len(diffs) < 2:
        return {"seeds": seeds, "diffs": diffs, "mean": mean, "sd": None, "ci95": None}
    sd = _std(diffs)
    half = float(stats.t.ppf(0.975, len(diffs) - 1)) * sd / math.sqrt(len(diffs))
    return {"seeds": seeds, "diffs": diffs, "mean": mean, "sd": sd, "ci95": [mean - half, mean + half]}


def outcome(pair: dict[str, Any], test: str) -> str:
    """One task's answer to a claim's test from its 95% interval: "yes", "no" or "undecided" (or "1 seed")."""
    if pair["ci95"] is None:
        return "1 seed"
    low, high = pair["ci95"]
    if test == "within":
        return "yes" if low >= -WITHIN else ("no" if high < -WITHIN else "undecided")
    if test == "greater":
        return "yes" if low > 0 else ("no" if high < 0 else "undecided")
    return "no" if high < 0 else ("yes" if low > 0 else "undecided")  # not_less: "yes" here = ahead


def claim_verdict(test: str, outcomes: dict[str, str], expected: int, mean: float | None) -> str:
    """A claim's verdict from its tasks' outcomes; "not measured yet" without a single paired task, and
    "so far (k of n tasks)" while tasks are missing: never a verdict from cells that are not there."""
    if not outcomes:
        return NOT_MEASURED
    tested = [o for o in outcomes.values() if o != "1 seed"]
    n, yes, no = len(tested), tested.count("yes"), tested.count("no")
    if not n:
        verdict = f"not testable yet: one seed per task measured (mean difference {mean:+.1f})"
    elif test == "greater":
        verdict = _claim_verdict({"a > b": yes, "a < b": no}, n)
    elif test == "not_less":
        verdict = (
            f"holds: behind in none of {n} (ahead in {yes})"
            if not no
            else f"does not hold: behind in {no} of {n}"
        )
    elif no:
        verdict = f"does not hold: more than {WITHIN:g} point behind in {no} of {n}"
    elif yes == n:
        verdict = f"holds: within {WITHIN:g} point in all {n}"
    else:
        verdict = f"not shown: within {WITHIN:g} point in {yes} of {n}, undecided in the rest"
    return (
        verdict if len(outcomes) == expected else f"so far ({len(outcomes)} of {expected} tasks): {verdict}"
    )


# -- the summary --------------------------------------------------------------------------------------------
def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Every number of the report, from the records of a cells file."""
    from benchmarks.main_table import PILOT_TASKS, PLATEAU_POINTS, budget_from_pilot

    check = precision_check(records)
    records = [r for r in records if r.get("kind") != "cell" or precision_of(r) == PRECISION]
    read = scores(records)
    entries = read["scores"]
    pilot = {r["task"]: [list(p) for p in r["curve"]] for r in records if r.get("kind") == "pilot"}
    pilot_summary = {"tasks": list(PILOT_TASKS), "curves": {t: pilot[t] for t in PILOT_TASKS if t in pilot},
                     "plateau_points": PLATEAU_POINTS,
                     "budget": budget_from_pilot(pilot) if set(PILOT_TASKS) <= set(pilot) else None,
                     "reached": {t: _reached(c, PLATEAU_POINTS) for t, c in pilot.items() if t in PILOT_TASKS},
                     "cell_steps": sorted({r["steps"] for r in records
                                           if r.get("kind") == "cell" and r.get("method") != "attempt_m"})}  # fmt: skip
    table: dict[str, dict[str, Any]] = {}
    for task in PLAN_TARGETS:
        row = {}
        for method in METHODS:
            entry = entries.get((method, task))
            if entry:
                seeds = sorted(entry)
                row[method] = {"seeds": seeds, "finished": finished(entry, task, method),
                               "final": mean_sd([entry[s]["final"] for s in seeds]),
                               "step0": mean_sd([entry[s]["step0"] for s in seeds]),
                               "minutes": mean_sd([entry[s]["minutes"] for s in seeds]),
                               "one_answer": [{"seed": s, "answer": entry[s]["one_answer"]} for s in seeds
                                              if entry[s]["one_answer"] is not None]}  # fmt: skip
        table[task] = row
    pairs = []
    for a, b in PAIRS:
        for task in PLAN_TARGETS:
            if (a, task) in entries and (b, task) in entries:
                pair = paired(entries[(a, task)], entries[(b, task)])
                if pair:
                    pairs.append({"a": a, "b": b, "task": task, **pair})
    claims = []
    for claim, a, b, test in CLAIMS:
        found = [p for p in pairs if (p["a"], p["b"]) == (a, b)]
        outcomes = {p["task"]: outcome(p, test) for p in found}
        mean = sum(p["mean"] for p in found) / len(found) if found else None
        expected = len(GLUE if a == "attempt_m" else PLAN_TARGETS)
        claims.append({"claim": claim, "a": a, "b": b, "test": test, "outcomes": outcomes, "mean_difference": mean,
                       "verdict": claim_verdict(test, outcomes, expected, mean)})  # fmt: skip
    return {"pilot": pilot_summary, "table": table, "constants": constants(records), "averages": averages(table),
            "paired": pairs, "claims": claims, "attention": attention(records), "spot_sources": spot_sources(records),
            "cost": cost(table, records), "missing": missing(records, entries), "ignored": read["ignored"],
            "precision": {"table": PRECISION, "check": check}, "source_versions": source_versions(records)}  # fmt: skip


def source_versions(records: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """{source name: {content hash: cells that mixed that version}}: more than one hash under a name means the
    cells did not all mix the same prompt (a source retrained and shipped between them)."""
    out: dict[str, dict[str, int]] = {}
    for r in records:
        for name, digest in r.get("source_hashes", {}).items() if r.get("kind") == "cell" else ():
            out.setdefault(name, {})
            out[name][digest] = out[name].get(digest, 0) + 1
    return {name: dict(sorted(v.items())) for name, v in sorted(out.items())}


def precision_check(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every (method, task, seed) with a cell at a precision other than PRECISION, with its cells at every
    precision finished (its twin at PRECISION among them, once it has run): step-0 and final test averages, and
    minutes."""
    by_key: dict[tuple, dict[str, dict[str, Any]]] = {}
    for r in records:
        if r.get("kind") == "cell":
            by_key.setdefault((r["method"], r["task"], r["seed"]), {})[precision_of(r)] = r
    return [
        {"method": m, "task": t, "seed": s, "precisions": {
            p: {"step0": c["step0_average"], "test": c["test"], "minutes": c["cell_time_s"] / 60,
                "test_rows": test_rows(c)}
            for p, c in sorted(cells.items(), key=lambda item: MIXED_PRECISIONS.index(item[0]))}}
        for (m, t, s), cells in by_key.items() if set(cells) - {PRECISION}
    ]  # fmt: skip


def test_rows(record: dict[str, Any]) -> int:
    """How many test rows a cell scored: its examples, kept as columns ({"idx": [...], ...}) or as rows."""
    examples = record.get("examples") or []
    return len(next(iter(examples.values()), [])) if isinstance(examples, dict) else len(examples)


def _reached(curve: list[list[float]], points: float) -> dict[str, Any]:
    best = max(v for _, v in curve)
    return {"best": best, "step": next(s for s, v in curve if v >= best - points)}


def averages(table: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per group (GLUE, SuperGLUE): each method's mean over the tasks that every method with a finished task
    in the group has finished (so every mean is over the same tasks), and the paper's mean over those tasks."""
    out = {}
    for group, tasks in GROUPS.items():
        methods = [m for m in METHODS if any(table[t].get(m, {}).get("finished") for t in tasks)]
        common = [t for t in tasks if methods and all(table[t].get(m, {}).get("finished") for m in methods)]
        out[group] = {"tasks": common, "methods": methods, "ours": {}, "paper": {}, "paper_all": {}}
        for m in methods:
            if common:
                out[group]["ours"][m] = sum(table[t][m]["final"]["mean"] for t in common) / len(common)
                out[group]["paper"][m] = (
                    sum(PAPER[m][t] for t in common) / len(common) if m in PAPER else None
                )
            out[group]["paper_all"][m] = PAPER_AVERAGES.get(m, {}).get(group)
    return out


def attention(records: list[dict[str, Any]]) -> dict[str, Any]:
    """ATTEMPT's attention over the test rows per task (mean over seeds): the mean weight of each prompt
    (the sources and the target), the peak and the spread over inputs; ATTEMPT-m's over all GLUE rows."""
    out = {}
    for method, tasks in (("attempt", PLAN_TARGETS), ("attempt_m", (JOINT,))):
        for task in tasks:
            stats = [r["attention"] for r in sorted(records, key=lambda r: str(r.get("seed")))
                     if r.get("kind") == "cell" and r["method"] == method and r["task"] == task and "attention" in r]  # fmt: skip
            if stats:
                names = sorted(
                    {n for s in stats for n in s["mean_weights"]}, key=lambda n: (n == "target", n)
                )
                out[f"{task} {method}"] = {
                    "task": task, "method": method, "seeds": len(stats),
                    "mean_weights": {n: sum(s["mean_weights"].get(n, 0.0) for s in stats) / len(stats) for n in names},
                    **{k: sum(s[k] for s in stats) / len(stats) for k in ("peak", "entropy", "uniform_entropy", "input_spread")},
                }  # fmt: skip
    return out


def spot_sources(records: list[dict[str, Any]]) -> dict[str, Any]:
    found = {r["task"]: r for r in records if r.get("kind") == "spot_source"}
    return {t: {"chosen": found[t]["chosen"], "validation_untrained": found[t]["validation_untrained"]}
            for t in PLAN_TARGETS if t in found}  # fmt: skip


def cost(table: dict[str, dict[str, Any]], records: list[dict[str, Any]]) -> dict[str, Any]:
    """Minutes per cell (cell_time_s: the step-0 score, training and the test) per task and method, the
    minutes per method summed over its finished cells, and the total; and how many finished cells trained with
    the LM head on every position of a row (those that record no `commit`: it came with `loss_only`, LABEL_HEAD)
    and how many on the label positions only."""
    totals: dict[str, float] = {}
    for r in records:
        if r.get("kind") == "cell" and r["method"] in METHODS:
            totals[r["method"]] = totals.get(r["method"], 0.0) + r["cell_time_s"] / 60
    per_cell = {
        task: {m: v["minutes"]["mean"] for m, v in row.items() if m != "attempt_m"}
        for task, row in table.items()
    }
    joint = [r["cell_time_s"] / 60 for r in records
             if r.get("kind") == "cell" and r["method"] == "attempt_m" and r["task"] == JOINT]  # fmt: skip
    cells = [r for r in records if r.get("kind") == "cell" and r["method"] in METHODS]
    label_head = sum("commit" in r for r in cells)
    # how each cell ran, where it says (from main_table's parallel processes on): torch's threads, cells at once
    setups: dict[str, int] = {}
    for r in cells:
        if "threads" in r:
            setup = f"{r['threads']} thread(s), {r['cells_at_once']} cell(s) at once"
            setups[setup] = setups.get(setup, 0) + 1
    return {"per_cell_minutes": per_cell, "attempt_m_cell_minutes": sum(joint) / len(joint) if joint else None,
            "method_minutes": {m: totals[m] for m in METHODS if m in totals}, "total_minutes": sum(totals.values()),
            "label_head_cells": label_head, "whole_row_head_cells": len(cells) - label_head,
            "setups": dict(sorted(setups.items())), "setup_unrecorded": len(cells) - sum(setups.values())}  # fmt: skip


def missing(records: list[dict[str, Any]], entries: dict[tuple[str, str], Any]) -> dict[str, Any]:
    """What the plan still lacks: pilot curves, SPoT choices, and (method, task) → seeds without a record."""
    from benchmarks.main_table import PILOT_TASKS

    kinds = {(r.get("kind"), r.get("task")) for r in records}
    cells = {}
    for method in PLAN_METHODS:
        for task in (JOINT,) if method == "attempt_m" else PLAN_TARGETS:
            have = set(entries.get((method, GLUE[0] if task == JOINT else task), {}))
            lacking = [s for s in seeds_of(task) if s not in have]
            if lacking:
                cells[f"{method} {task}"] = lacking
    return {"pilot": [t for t in PILOT_TASKS if ("pilot", t) not in kinds],
            "spot_sources": [t for t in PLAN_TARGETS if ("spot_source", t) not in kinds], "cells": cells,
            "cell_count": sum(len(s) for s in cells.values()), "projected_hours": projected_hours(records, cells),
            "planned_count": sum(len(seeds_of(t)) for t in PLAN_TARGETS) * (len(PLAN_METHODS) - 1) + 3}  # fmt: skip


def projected_hours(records: list[dict[str, Any]], lacking: dict[str, list[int]]) -> float | None:
    """Hours the lacking cells ("method task" → seeds) would take here, each at the mean minutes of its method's
    finished cells (of every finished cell where its method has none; ATTEMPT-m at len(GLUE) times that, as it
    trains that many times the steps); None before any cell has finished. Rough: tasks differ in input length."""
    minutes: dict[str, list[float]] = {}
    for r in records:
        if r.get("kind") == "cell":
            minutes.setdefault(r["method"], []).append(r["cell_time_s"] / 60)
    every = [m for ms in minutes.values() for m in ms]
    if not every:
        return None
    total = 0.0
    for key, seeds in lacking.items():
        method = key.split(" ")[0]
        own = minutes.get(method)
        each = (
            sum(own) / len(own)
            if own
            else sum(every) / len(every) * (len(GLUE) if method == "attempt_m" else 1)
        )
        total += each * len(seeds)
    return total / 60


# -- provenance and files -----------------------------------------------------------------------------------
def provenance(cells: Path) -> dict[str, Any]:
    """What the report was made from: the cells file (its path as shown, size in records, sha256) and the last
    commit that changed it, and whether the file has changes after that commit."""
    data = cells.read_bytes() if cells.is_file() else None
    found = {"cells": shown(cells), "exists": data is not None, "records": len(read_records(cells)),
             "sha256": hashlib.sha256(data).hexdigest()[:16] if data is not None else None,
             "commit": None, "changed_since": False}  # fmt: skip
    if cells.resolve().is_relative_to(REPO):
        log = _git("log", "-1", "--format=%h %cs", "--", str(cells))
        found["commit"] = log or None
        found["changed_since"] = bool(_git("status", "--porcelain", "--", str(cells)))
    return found


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
    except OSError:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def write(cells: Path, command: str) -> dict[str, Path]:
    """Write main_table-<backbone>.{md,json} beside `cells` (cells-<backbone>.jsonl), from it alone."""
    records = read_records(cells)
    backbone = cells.stem.removeprefix("cells-")
    results = {"backbone": backbone, "command": command, "provenance": provenance(cells),
               "paper_source": PAPER_SOURCE, "summary": summarise(records)}  # fmt: skip
    stem = cells.parent / f"main_table-{backbone}"
    write_json(stem.with_suffix(".json"), results)
    storage.write_text(stem.with_suffix(".md"), report(results))
    return {"md": stem.with_suffix(".md"), "json": stem.with_suffix(".json")}


# -- the Markdown -------------------------------------------------------------------------------------------
def _ms(entry: dict[str, Any] | None, paper: float | None = None, mark: str = "") -> str:
    if not entry:
        return "–" if paper is None else f"– [{paper:.1f}]"
    spread = f" ± {entry['sd']:.1f}" if entry["n"] > 1 else ""  # one seed has no spread to show (not 0.0)
    text = f"{entry['mean']:.1f}{spread} ({entry['n']}){mark}"
    return text if paper is None else f"{text} [{paper:.1f}]"


ONE_ANSWER = "†"  # the mark of a score whose cell (a seed of it) gave every test row the same answer


def _constant(c: dict[str, Any] | None) -> str:
    """A task's constant cell: the score, and the answer that gets it when no other does (a correlation gets 0
    from any)."""
    if not c or c["score"] is None:
        return "–"
    return f"{c['score']:.1f}" + (f" ({c['best'][0]})" if len(c["best"]) == 1 else "")


def _constant_lines(s: dict[str, Any]) -> list[str]:
    """The sentences under the Scores table: the constant column, the tasks it cannot score, the marked cells."""
    lines = ["", "constant: the best score one fixed answer gets on the same test rows, over every answer among "
             "the references of the task's cells, on the task's metric as the library computes it "
             "(`attempt.tasks.metrics`; the answer in brackets when no other gets it): a cell at or below it "
             "learned nothing it shows. Matthews (CoLA) and Pearson (STS-B) score a fixed answer 0.0 (sklearn's "
             "Matthews; `metrics.pearson` takes a constant side as no correlation). MultiRC's F1 over answers "
             "scores each answer row alone (no grouping by question), so the records score it too. ATTEMPT-m's "
             "records keep the test rows of its 8 GLUE tasks together, without each row's task: they are neither "
             "read for the constant nor marked."]  # fmt: skip
    notes = []
    for task, c in s["constants"].items():
        if c["score"] is None:
            notes.append(f"- {task}: – because {c['why']}.")
        elif c["undefined"]:
            notes.append(f"- {task}: the library's {METRIC_NAMES[metric_of(task)]} is NaN (undefined) for "
                         f"{len(c['undefined'])} of the {c['candidates']} answers; the column shows the best of the "
                         "others.")  # fmt: skip
    lines += ["", *notes] if notes else []
    marked = [(task, method, v["one_answer"]) for task, row in s["table"].items()
              for method, v in row.items() if v.get("one_answer")]  # fmt: skip
    if marked:
        lines += ["", f"{ONE_ANSWER} every test prediction is the same answer: " + "; ".join(
            f"{LABELS[m]} {task} (" + ", ".join(f"seed {o['seed']}: {o['answer']}" for o in seeds) + ")"
            for task, m, seeds in marked) + "."]  # fmt: skip
    return lines


def report(results: dict[str, Any]) -> str:
    """The Markdown report of `write`'s results."""
    s, p = results["summary"], results["provenance"]
    missing = s["missing"]
    status = ("no cells yet" if missing["cell_count"] == missing["planned_count"] else
              "complete" if not missing["cell_count"] else
              f"PARTIAL: {missing['cell_count']} of {missing['planned_count']} planned cells missing")  # fmt: skip
    if not p["exists"]:
        made_from = f"`{p['cells']}`, which does not exist yet (nothing has finished)"
    else:
        commit = f"as last committed in {p['commit']}" if p["commit"] else "not in the repository"
        commit += ", with changes not committed yet" if p["changed_since"] else ""
        made_from = f"`{p['cells']}` ({p['records']} records, sha256 {p['sha256']}), {commit}"
    lines = [f"# The main table on {results['backbone']} ({status})", "",
             f"Made by `{results['command']}` from {made_from}, and the paper's T5-base numbers "
             f"(ATTEMPT's Table 1 as reprinted in ACCEPT / ULPT, `{PAPER_SOURCE}`), nothing else: "
             "the same cells file gives the same report, byte for byte. Scores are on the paper's metric per task "
             "(Matthews for CoLA, Pearson for STS-B, F1 over answers for MultiRC, accuracy elsewhere), ×100."]  # fmt: skip
    lines += _pilot_lines(s["pilot"])
    lines += _score_lines(s)
    lines += _paired_lines(s)
    lines += _claim_lines(s)
    lines += _attention_lines(s)
    lines += _cost_lines(s)
    lines += _precision_lines(s)
    lines += _missing_lines(s)
    return "\n".join(lines) + "\n"


def _pilot_lines(pilot: dict[str, Any]) -> list[str]:
    tasks = pilot["tasks"]
    lines = ["", "## The pilot: the step budget", "",
             f"Prompt tuning on {' and '.join(tasks)}, validated as it trains. The budget of every cell is the first "
             f"step at which both validation curves are within {pilot['plateau_points']:g} points of their own best, "
             "rounded up to 100 (`main_table.budget_from_pilot`): a budget that leaves prompt tuning half-trained "
             "would favour a method that starts higher.", ""]  # fmt: skip
    if not pilot["curves"]:
        return [
            *lines,
            "No pilot curve in the cells file yet (an unfinished pilot keeps its resumable state "
            "under state/, which the report does not read).",
        ]
    steps = sorted({step for c in pilot["curves"].values() for step, _ in c})
    values = {t: dict((step, v) for step, v in c) for t, c in pilot["curves"].items()}
    lines += [
        "| step | " + " | ".join(f"{t} validation" for t in tasks) + " |",
        "|---:|" + "---:|" * len(tasks),
    ]
    for step in steps:
        lines.append(f"| {step} | " + " | ".join(f"{values[t][step]:.1f}" if step in values.get(t, {}) else "–"
                                                 for t in tasks) + " |")  # fmt: skip
    lines.append("")
    for t in tasks:
        r = pilot["reached"].get(t)
        lines.append(f"- {t}: " + (f"best {r['best']:.1f}, within {pilot['plateau_points']:g} of it from step {r['step']}"
                                   if r else "not finished"))  # fmt: skip
    lines.append("")
    if pilot["budget"] is None:
        lines.append("**Budget: none yet** (the pilot has not finished on every task).")
    else:
        lines.append(
            f"**Budget: {pilot['budget']} steps** per single-task cell (ATTEMPT-m: × 8, over the 8 GLUE tasks)."
        )
    if pilot["cell_steps"] and pilot["cell_steps"] != [pilot["budget"]]:
        lines.append(f"The single-task cells ran {', '.join(map(str, pilot['cell_steps']))} steps.")
    return lines


def _score_lines(s: dict[str, Any]) -> list[str]:
    table = s["table"]
    shown_methods = [m for m in METHODS if m in PLAN_METHODS or any(m in row for row in table.values())]
    header = ["| task | metric | " + " | ".join(LABELS[m] for m in shown_methods) + " |",
              "|---|---|" + "---:|" * len(shown_methods)]  # fmt: skip
    lines = ["", "## Scores", "",
             "Final test score, mean ± sd over seeds (n seeds), the paper's T5-base number in brackets. Three seeds "
             "on the tasks with under 10K training rows, one on the others; ATTEMPT-m is one run over the 8 GLUE "
             "tasks per seed. COPA is not in the paper's table; boolq trains on the mirror's 32 training rows (FewGLUE's "
        "train sample, `benchmarks.common.SPLIT_STANDINS`), not its 9,427 official rows; qqp is tested on 1,000 "
        "pairs held out of its official training rows (`benchmarks.common.HELD_OUT`: the mirror lacks the GLUE dev, "
        "and its BiMPM stand-in is label-balanced); rte and mrpc are tested on their whole official validation (277 "
        "rows; mrpc's first 300 of 408) and validated on 200 rows held out of their training rows "
        "(`main_table.WHOLE_VALIDATION_TEST`: the paper's halves leave 139 and 204 test rows); the paper's LoRA numbers are from the DePT-derived reprints, "
        "and may not be in ATTEMPT's own table (the file's footnote 1).", "",
        header[0] + " constant |", header[1] + "---:|"]  # fmt: skip
    for task in PLAN_TARGETS:
        cells = [_ms(v.get("final"), PAPER.get(m, {}).get(task), ONE_ANSWER if v.get("one_answer") else "")
                 for m, v in ((m, table[task].get(m, {})) for m in shown_methods)]  # fmt: skip
        cells.append(_constant(s["constants"].get(task)))
        lines.append(f"| {task} | {METRIC_NAMES[metric_of(task)]} | " + " | ".join(cells) + " |")
    lines += _constant_lines(s)
    lines += ["", "Averages over tasks, each over the same tasks for every method (those every method with a "
              "finished task in the group has finished, all its seeds); the paper's mean over the same tasks in "
              "brackets, and its printed average over all the group's tasks after it:", "",
              "| group | tasks averaged | " + " | ".join(LABELS[m] for m in shown_methods) + " |",
              "|---|---|" + "---:|" * len(shown_methods)]  # fmt: skip
    for group, a in s["averages"].items():
        cells = []
        for m in shown_methods:
            printed = a["paper_all"].get(m) or PAPER_AVERAGES.get(m, {}).get(group)
            tail = f" / {printed:.1f}" if printed is not None else ""
            if m in a["ours"]:
                paper = a["paper"][m]
                cells.append(f"{a['ours'][m]:.1f}" + (f" [{paper:.1f}{tail}]" if paper is not None else ""))
            else:
                cells.append(f"– [{printed:.1f}]" if printed is not None else "–")
        tasks = ", ".join(a["tasks"]) if a["tasks"] else "none: no task finished by every method yet"
        lines.append(f"| {group} | {tasks} | " + " | ".join(cells) + " |")
    lines += ["", "Step-0 test score (the model as built, before any update; the same test rows), mean ± sd (n):",
              "", *header]  # fmt: skip
    for task in PLAN_TARGETS:
        cells = [_ms(table[task].get(m, {}).get("step0")) for m in shown_methods]
        lines.append(f"| {task} | {METRIC_NAMES[metric_of(task)]} | " + " | ".join(cells) + " |")
    lines += ["", "SPoT's source per target: the source prompt that scores best on the target's validation rows "
              "untrained (`attempt.evaluation.ranking.rank_sources`, as `attempt prompts rank` does):", ""]  # fmt: skip
    if not s["spot_sources"]:
        lines.append("None chosen yet.")
    for task, v in s["spot_sources"].items():
        untrained = ", ".join(f"{n} {x:.1f}" for n, x in v["validation_untrained"].items())
        lines.append(f"- {task} → **{v['chosen']}** (untrained validation average: {untrained})")
    versions = s["source_versions"]
    lines += ["", "The source prompts the finished cells mixed (content hash: cells):", ""]
    if not versions:
        lines.append("None yet.")
    for name, hashes in versions.items():
        mixed = "; ".join(f"{h}: {n}" for h, n in hashes.items())
        warn = (
            " **(more than one version: these cells did not all mix the same prompt)**"
            if len(hashes) > 1
            else ""
        )
        lines.append(f"- {name}: {mixed}{warn}")
    return lines


def _paired_lines(s: dict[str, Any]) -> list[str]:
    lines = ["", "## Paired differences", "",
             "Method − baseline on the final test score, paired by seed (same initialisation seed and batch order), "
             "with a 95% t-interval over seeds where there are at least 2:", ""]  # fmt: skip
    if not s["paired"]:
        return [*lines, "None yet: no task has both methods of a pair finished on a common seed."]
    lines += ["| method − baseline | task | mean | 95% CI | seeds |", "|---|---|---:|---|---:|"]
    for p in s["paired"]:
        ci = f"[{p['ci95'][0]:+.1f}, {p['ci95'][1]:+.1f}]" if p["ci95"] else "– (1 seed)"
        lines.append(
            f"| {LABELS[p['a']]} − {LABELS[p['b']]} | {p['task']} | {p['mean']:+.1f} | {ci} | {len(p['seeds'])} |"
        )
    return lines


def _claim_lines(s: dict[str, Any]) -> list[str]:
    lines = ["", "## Verdicts", "",
             "Per claim, from the tasks where both methods have a common seed; a task counts when its 95% interval "
             f"decides (> 0; ≥ 0 means not below 0; within {WITHIN:g} point means the interval lies above "
             f"−{WITHIN:g}). Tasks with one seed give no interval: they are listed, not counted. "
             f"\"{NOT_MEASURED}\" when no task has the cells.", "",
             "| claim | verdict | mean difference | per task |", "|---|---|---:|---|"]  # fmt: skip
    for c in s["claims"]:
        mean = "–" if c["mean_difference"] is None else f"{c['mean_difference']:+.1f}"
        tasks = ", ".join(f"{t}: {o}" for t, o in c["outcomes"].items()) or "–"
        lines.append(f"| {c['claim']} | {c['verdict']} | {mean} | {tasks} |")
    return lines


def _attention_lines(s: dict[str, Any]) -> list[str]:
    lines = ["", "## Attention", "",
             "ATTEMPT's mean attention weight per prompt over the test rows (mean over seeds); peak = mean of each "
             "row's largest weight; input spread = mean std over rows of a prompt's weight (0: every input gets the "
             "same mixture). ATTEMPT-m: over the test rows of all 8 GLUE tasks together.", ""]  # fmt: skip
    if not s["attention"]:
        return [*lines, "No ATTEMPT cell has finished yet."]
    names = sorted(
        {n for a in s["attention"].values() for n in a["mean_weights"]}, key=lambda n: (n == "target", n)
    )
    lines += ["| task | method | seeds | " + " | ".join(names) + " | peak | entropy (uniform) | input spread |",
              "|---|---|---:|" + "---:|" * len(names) + "---:|---:|---:|"]  # fmt: skip
    for a in s["attention"].values():
        weights = " | ".join(f"{a['mean_weights'][n]:.3f}" if n in a["mean_weights"] else "–" for n in names)
        lines.append(f"| {a['task']} | {LABELS[a['method']]} | {a['seeds']} | {weights} | {a['peak']:.3f} | "
                     f"{a['entropy']:.3f} ({a['uniform_entropy']:.3f}) | {a['input_spread']:.4f} |")  # fmt: skip
    return lines


def _cost_lines(s: dict[str, Any]) -> list[str]:
    c = s["cost"]
    methods = [m for m in METHODS if m != "attempt_m"]
    lines = ["", "## Cost", "",
             "Minutes per cell on this machine (`cell_time_s`: the step-0 score, the training and the test "
             "evaluation), mean over the seeds finished; to plan a run elsewhere, multiply by the seeds the task "
             "needs and scale by your machine's speed.", "",
             "| task | " + " | ".join(LABELS[m] for m in methods) + " |", "|---|" + "---:|" * len(methods)]  # fmt: skip
    for task, row in c["per_cell_minutes"].items():
        lines.append(
            f"| {task} | " + " | ".join(f"{row[m]:.1f}" if m in row else "–" for m in methods) + " |"
        )
    joint = c["attempt_m_cell_minutes"]
    lines += ["", f"ATTEMPT-m (8 GLUE tasks, one run): {'–' if joint is None else f'{joint:.1f}'} minutes per cell.",
              "", "Minutes spent, summed over the finished cells: "
              + (", ".join(f"{LABELS[m]} {v:.0f}" for m, v in c["method_minutes"].items()) or "none")
              + f"; total {c['total_minutes']:.0f} minutes ({c['total_minutes'] / 60:.1f} hours)."]  # fmt: skip
    if c["label_head_cells"]:
        lines += ["", f"{c['whole_row_head_cells']} of these cells trained with the LM head on every position of a "
                  f"row, {c['label_head_cells']} (those that record a `commit`, from {LABEL_HEAD} on) on the positions "
                  "that predict a label word only (`loss_only`): the same loss and gradients, a faster step "
                  "(`benchmarks/label_logits.py`), so their minutes are lower for the same work."]  # fmt: skip
    if c.get("setups"):
        lines += ["", "How the cells ran, where they record it (torch's threads, and how many cells ran at once when "
                  "each began): " + ", ".join(f"{n} with {setup}" for setup, n in c["setups"].items())
                  + f"; {c['setup_unrecorded']} from before it was recorded (one process: one cell at a time, on 1 or "
                  "2 threads). A cell on one thread beside another takes more minutes than one alone on two, while "
                  "the two finish more cells an hour (`benchmarks/cell_parallel.py`)."]  # fmt: skip
    return lines


def _precision_lines(s: dict[str, Any]) -> list[str]:
    table, check = s["precision"]["table"], s["precision"]["check"]
    lines = ["", "## Precision", "",
             f"Every cell above ran with {PRECISION_NAMES[table]} (`--mixed-precision {table}`: "
             "`TrainConfig(mixed_precision='bf16', eval_in_float32=True)`, the step-0 score in float32 too). bf16 "
             "training takes about half float32's minutes here; bf16 scoring would save more, but it changed 1-6% of "
             "a trained prompt's answers (near ties) and moved accuracy by up to 3 points (`benchmarks/precision.py`). "
             "Cells run at another precision are left out of the tables; here they are beside their twins (same "
             "method, task and seed): test averages, the test rows they were scored on (rte's first cells: the "
             "paper's halved 139, before `WHOLE_VALIDATION_TEST`) and minutes.", ""]  # fmt: skip
    if not check:
        return [*lines, "No cell at another precision."]
    lines += [
        "| method | task | seed | precision | step 0 | test | test rows | minutes |",
        "|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for c in check:
        for p in [
            p for p in MIXED_PRECISIONS if p in c["precisions"] or p == table
        ]:  # the twin: "–" until run
            v = c["precisions"].get(p)
            shown_values = (
                f"{v['step0']:.1f} | {v['test']:.1f} | {v['test_rows']} | {v['minutes']:.0f}"
                if v
                else "– | – | – | –"
            )
            lines.append(f"| {LABELS.get(c['method'], c['method'])} | {c['task']} | {c['seed']} | "
                         f"{PRECISION_NAMES[p]} | {shown_values} |")  # fmt: skip
    return lines


def _missing_lines(s: dict[str, Any]) -> list[str]:
    m = s["missing"]
    lines = ["", "## Missing", "",
             f"{m['cell_count']} of the {m['planned_count']} planned cells have no record yet (full fine-tuning is "
             "optional and not counted)."]  # fmt: skip
    if m.get("projected_hours") is not None:
        lines.append(f"At the minutes per cell of the cells finished so far (Cost), they would take about "
                     f"{m['projected_hours']:.0f} hours of this machine, one cell at a time (rough: tasks differ in "
                     "input length; `main_table_report.projected_hours`).")  # fmt: skip
    if m["pilot"]:
        lines.append(f"Pilot curves not finished: {', '.join(m['pilot'])}.")
    if m["spot_sources"]:
        lines.append(f"SPoT sources not chosen: {', '.join(m['spot_sources'])}.")
    lines.append("")
    for method in PLAN_METHODS:
        lacking = [(k.split(" ")[1], seeds) for k, seeds in m["cells"].items() if k.split(" ")[0] == method]
        if lacking:
            lines.append(
                f"- {LABELS[method]}: "
                + ", ".join(f"{t} (seeds {', '.join(map(str, seeds))})" for t, seeds in lacking)
            )
    if s["ignored"]:
        lines += ["", "Records outside the plan, left out: "
                  + ", ".join(f"{why} ×{n}" for why, n in sorted(s["ignored"].items())) + "."]  # fmt: skip
    return lines
