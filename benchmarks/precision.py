"""Can the main table (benchmarks/main_table.py) run in bf16 mixed precision on this CPU: how much faster is it
than float32, and does it change the scores? Both precisions side by side in one run, on SmolLM2-135M-Instruct.

    python -m benchmarks.precision                        # about 13 min on one thread of the shared 2-core CPU
    python -m benchmarks.precision --rows 64              # fewer test rows of each task (rte: the table's 139)
    python -m benchmarks.precision --report-only          # the report again, from the JSON alone
    python -m benchmarks.precision --tiny --out /tmp/x    # the tests' tiny causal LM (seconds)

bf16 is `torch.autocast("cpu", dtype=torch.bfloat16)`, what the training loop's `accelerator.autocast` is with
`mixed_precision="bf16"`: the weights stay float32, the forward runs its matrix products in bf16; the backward
and AdamW's step run outside it (accelerate wraps only the forward). Three measurements:

* a training step (forward + backward + AdamW step; `benchmarks.efficiency`'s `build_method`, `random_batch`
  and `train_step`) of the main table's methods that need no trained source: prompt tuning, ATTEMPT (over
  efficiency's random source prompts) and LoRA, at the main table's batch (8) and prompt length (20), on
  inputs of 128 tokens (rte's `max_source_length`). The two precisions of a method run on the same model and
  batch, alternating within every repeat with the methods, the order reversed every other repeat (the machine
  is shared: a slow spell falls on both); kept: the median and the fastest step, and their float32/bf16 ratios.
  Also the loss of the first batch in each precision, on the same weights;
* rank scoring of the main table's rte test rows (the first `--rows` of the 300 it scores: `MainTable.config`
  and `load_task_data`, as `MainTable.step0` reads them) at step 0, the model as built (seed 0), for prompt
  tuning and for ATTEMPT over the shipped source prompts (SOURCES), with `evaluate(..., method="rank",
  batch_size=32, autocast=...)` as the main table calls it, once in each precision on the same model (the
  order reversed for the second model): the wall time of each, the accuracy of each, the fraction of rows
  whose predicted label agrees, and the largest and mean absolute difference of the per-row label scores
  (each label word's log-likelihood, `Inference.scores`, kept as `evaluate` computes them: `recorded_scores`).
  At step 0 both models give every row one label, with gaps of 7+ nats between a row's two best labels, so
  their agreement says nothing about a trained model's near ties;
* trained prompts: each shipped source prompt of TRAINED (sst2, qnli, mnli: trained, with predictions of every
  label) on the main table's test rows of its own task (the first `--rows` of the 300 it scores), as the
  table's SPoT model of that task over that prompt at step 0 (`config("spot", (task,), ...,
  source_prompts=(task,))`: the target prompt starts as a copy of the source prompt, checked, so this is the
  trained prompt itself), scored the same way, once in each precision on the same model (the order reversed
  for every other task).

The report compares ratios, not seconds: the machine's two cores are shared with background training jobs.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, add_run_arguments, made_by, measure_or_reread, provenance, slug

BACKBONE = "HuggingFaceTB/SmolLM2-135M-Instruct"
LIBRARY = REPO / "prompts" / "smollm2-135m-instruct"
SOURCES = ("mnli", "qnli", "sst2")  # the shipped source prompts (the main table's qqp is not shipped yet)
BENCHMARK = "precision"
PRECISIONS = ("float32", "bf16")
TRAIN_METHODS = ("prompt_tuning", "attempt", "lora")  # the main table's methods that need no trained source
EVAL_MODELS = ("prompt_tuning", "attempt")
TRAINED = (
    "sst2",
    "qnli",
    "mnli",
)  # the shipped source prompts scored on their own task (trained, not step 0)
TASK, ROWS, EVAL_BATCH = "rte", 300, 32
# batch and prompt length: the main table's (Options.batch, Options.prompt_length); length: rte's inputs
SIZES = {
    "full": {"batch": 8, "length": 128, "prompt_length": 20, "repeats": 4},
    "tiny": {"batch": 2, "length": 16, "prompt_length": 4, "repeats": 2},
}
WARMUP_ROWS = 4  # scored once in each precision before the timed scoring (first-call costs)


def autocast(precision: str):
    """A context for `precision`: bf16 autocast on the CPU, or nothing (float32)."""
    import torch

    if precision == "float32":
        return contextlib.nullcontext()
    return torch.autocast("cpu", dtype=torch.bfloat16)


def agreement(reference: Sequence[Sequence[float]], other: Sequence[Sequence[float]]) -> dict[str, Any]:
    """How far `other`'s per-row label scores are from `reference`'s (the same rows, labels in the same order,
    at least two a row).

    Returns ``rows``; ``same_prediction``: the fraction of rows whose predicted label (the highest score, the
    first on a tie, as rank classification picks it) is the same; ``changed_rows``: the positions of the others;
    ``label_counts``: how many rows `reference` gives each label (one label for every row: agreeing says
    little); ``max_abs_diff`` and ``mean_abs_diff``: over every (row, label) score; a row's margin: its best
    minus its second-best score in `reference` (those two labels' gap is what a change of label needs to
    cross): ``smallest_margin`` over the rows, ``max_margin_change``: the largest change of that gap in
    `other`, and ``largest_changed_margin``: the largest margin among the changed rows (None when none changed).
    """
    if len(reference) != len(other):
        raise ValueError(f"{len(reference)} rows of scores against {len(other)}")
    diffs: list[float] = []
    changed: list[int] = []
    margins: list[float] = []
    moves: list[float] = []
    counts = [0] * max((len(a) for a in reference), default=0)
    for row, (a, b) in enumerate(zip(reference, other, strict=True)):
        if len(a) != len(b) or len(a) < 2:
            raise ValueError(f"row {row}: {len(a)} label scores against {len(b)} (two or more each)")
        diffs += [abs(x - y) for x, y in zip(a, b, strict=True)]
        best, second = sorted(range(len(a)), key=lambda i: (-a[i], i))[:2]
        counts[best] += 1
        margins.append(a[best] - a[second])
        moves.append(abs((a[best] - a[second]) - (b[best] - b[second])))
        if best != min(range(len(b)), key=lambda i: (-b[i], i)):
            changed.append(row)
    return {
        "rows": len(reference),
        "same_prediction": (len(reference) - len(changed)) / len(reference) if reference else 1.0,
        "changed_rows": changed,
        "label_counts": counts,
        "max_abs_diff": max(diffs, default=0.0),
        "mean_abs_diff": sum(diffs) / len(diffs) if diffs else 0.0,
        "smallest_margin": min(margins, default=None),
        "max_margin_change": max(moves, default=None),
        "largest_changed_margin": max((margins[row] for row in changed), default=None),
    }


@contextlib.contextmanager
def recorded_scores():
    """Inside, every answer `evaluate` computes is also kept: ``{row index: [score of each label]}`` (rank
    classification: each label word's log-likelihood, `Inference.scores`). `evaluate` keeps them only in its
    records; this wraps `attempt.evaluation.inference.infer_batch`, the one call its loop makes per batch, so
    the timed call stays the main table's own."""
    from attempt.evaluation import inference

    kept: dict[int, list[float]] = {}
    original = inference.infer_batch

    def recording(model, collator, examples, **kwargs):
        answers = original(model, collator, examples, **kwargs)
        for example, answer in zip(examples, answers, strict=True):
            kept[example["index"]] = answer.scores
        return answers

    inference.infer_batch = recording
    try:
        yield kept
    finally:
        inference.infer_batch = original


# -- training step ---------------------------------------------------------------------------------------------
def time_training(backbone, sizes: dict[str, int], log=print) -> dict[str, Any]:
    """Seconds per training step of each of TRAIN_METHODS in each precision (see the module docstring)."""
    import torch

    from benchmarks.efficiency import build_method, random_batch, train_step

    vocab = backbone.get_input_embeddings().weight.shape[0]
    data = random_batch("causal", sizes["batch"], sizes["length"], vocab, torch.device("cpu"))
    # prompt tuning and ATTEMPT wrap the backbone itself (frozen); LoRA gets its own copy (build_method)
    built = {
        method: build_method(method, backbone, "causal", sizes["prompt_length"]) for method in TRAIN_METHODS
    }
    losses: dict[str, dict[str, float]] = {}
    for method, (_, loss_fn, optimizer, _) in built.items():
        losses[method] = {}
        for precision in PRECISIONS:  # the first batch's loss on the same weights (dropout: the same masks)
            torch.manual_seed(0)
            with torch.no_grad(), autocast(precision):
                losses[method][precision] = float(loss_fn(data))
        for precision in PRECISIONS:  # warm-up (allocator, lazy init, oneDNN's bf16 kernels)
            train_step(_under(precision, loss_fn), optimizer, data)
        log(f"{method}: first loss {losses[method]}")
    pairs = [(method, precision) for method in TRAIN_METHODS for precision in PRECISIONS]
    runs: dict[tuple[str, str], list[float]] = {pair: [] for pair in pairs}
    for repeat in range(sizes["repeats"]):
        for method, precision in pairs if repeat % 2 == 0 else reversed(pairs):
            _, loss_fn, optimizer, _ = built[method]
            start = time.perf_counter()
            train_step(_under(precision, loss_fn), optimizer, data)
            runs[method, precision].append(time.perf_counter() - start)
        log(f"repeat {repeat + 1}: " + ", ".join(f"{m} {p} {runs[m, p][-1]:.2f}s" for m, p in pairs))
    methods = {}
    for method in TRAIN_METHODS:
        each = {p: {"median_s": statistics.median(runs[method, p]), "fastest_s": min(runs[method, p]),
                    "runs_s": runs[method, p], "first_loss": losses[method][p]} for p in PRECISIONS}  # fmt: skip
        methods[method] = {
            "trainable_params": built[method][3],
            **each,
            "ratio_median": each["float32"]["median_s"] / each["bf16"]["median_s"],
            "ratio_fastest": each["float32"]["fastest_s"] / each["bf16"]["fastest_s"],
        }
    return {**{k: sizes[k] for k in ("batch", "length", "prompt_length", "repeats")}, "methods": methods}


def _under(precision: str, loss_fn):
    """`loss_fn` with its forward under `precision`'s autocast (the backward and the step outside it)."""

    def loss(batch):
        with autocast(precision):
            return loss_fn(batch)

    return loss


# -- rank scoring --------------------------------------------------------------------------------------------
def score_rows(model, tokenizer, task: str, rows, max_source_length: int, precision: str) -> dict[str, Any]:
    """One `evaluate` of `task`'s `rows` (rank classification, as the main table scores its test rows) in
    `precision`: its wall time, accuracy and per-row label scores."""
    from attempt.evaluation.evaluate import evaluate

    with recorded_scores() as kept:
        start = time.perf_counter()
        metrics = evaluate(model, tokenizer, {task: rows}, method="rank", batch_size=EVAL_BATCH,
                           max_source_length=max_source_length, autocast=lambda: autocast(precision))  # fmt: skip
        seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "accuracy": metrics[task]["accuracy"],
        "scores": [kept[i] for i in range(len(rows))],
    }


def both_precisions(model, tokenizer, task: str, rows, max_source_length: int, reverse: bool, what: str,
                    log=print) -> dict[str, Any]:  # fmt: skip
    """`rows` scored once in each precision on the same `model` (after a warm-up of WARMUP_ROWS in each; the
    order reversed if `reverse`): the seconds and accuracy of each, their ratio and the `agreement` of the
    scores (float32 the reference)."""
    for precision in PRECISIONS:  # warm-up, not kept
        score_rows(model, tokenizer, task, rows[:WARMUP_ROWS], max_source_length, precision)
    scored = {}
    for precision in tuple(reversed(PRECISIONS)) if reverse else PRECISIONS:
        scored[precision] = score_rows(model, tokenizer, task, rows, max_source_length, precision)
        log(f"{what} {precision}: {scored[precision]['seconds']:.1f}s, accuracy "
            f"{scored[precision]['accuracy']:.1f}")  # fmt: skip
    return {
        **{p: {k: scored[p][k] for k in ("seconds", "accuracy")} for p in PRECISIONS},
        "ratio": scored["float32"]["seconds"] / scored["bf16"]["seconds"],
        "agreement": agreement(scored["float32"]["scores"], scored["bf16"]["scores"]),
    }


def time_scoring(table, backbone, tokenizer, rows_wanted: int, out: Path, log=print) -> dict[str, Any]:
    """Rank scoring of the main table's rte test rows at step 0, per model of EVAL_MODELS, in both precisions."""
    from attempt.data.splits import load_task_data
    from attempt.runs.build import build_model
    from attempt.tasks import get_task

    result: dict[str, Any] = {
        "task": TASK,
        "labels": list(get_task(TASK).label_words),
        "batch_size": EVAL_BATCH,
    }
    for n, method in enumerate(EVAL_MODELS):
        extra = {"source_prompts": table.options.sources} if method == "attempt" else {}
        config = table.config(method, (TASK,), 0, out / "runs" / method, 500, **extra)
        every = load_task_data(config)[TASK]["test"]  # the table's test rows (at most its test_limit)
        rows = every[:rows_wanted]
        result.update(max_source_length=config.max_source_length, rows=len(rows), rows_in_table=len(every))
        result.setdefault("models", {})
        model = build_model(config, copy.deepcopy(backbone), tokenizer, "causal")
        result["models"][method] = {
            **({"sources": list(table.options.sources)} if method == "attempt" else {}),
            **both_precisions(
                model, tokenizer, TASK, rows, config.max_source_length, n % 2 == 1, method, log
            ),
        }
        del model
    return result


def score_trained(table, backbone, tokenizer, rows_wanted: int, out: Path, log=print) -> dict[str, Any]:
    """Each shipped source prompt of TRAINED on the main table's test rows of its own task, in both precisions:
    the table's SPoT model of that task over that prompt (`mode="spot"`: the target prompt starts as the source
    prompt) at step 0, so the trained prompt itself, untrained further."""
    import torch

    from attempt.data.splits import load_task_data
    from attempt.prompts.library import PromptLibrary
    from attempt.runs.build import build_model
    from attempt.tasks import get_task

    library = PromptLibrary(table.options.library)
    result: dict[str, Any] = {"batch_size": EVAL_BATCH, "tasks": {}}
    for n, task in enumerate(TRAINED):
        config = table.config(
            "spot", (task,), 0, out / "runs" / f"trained-{task}", 500, source_prompts=(task,)
        )
        every = load_task_data(config)[task]["test"]  # the table's test rows (at most its test_limit)
        rows = every[:rows_wanted]
        prompt = library.get(task)
        model = build_model(config, copy.deepcopy(backbone), tokenizer, "causal")
        if not torch.equal(model.mixture.target_prompts.detach()[0], prompt.embeddings.float()):
            raise RuntimeError(f"the {task} SPoT model's target prompt is not the shipped {task} prompt")
        result["tasks"][task] = {
            "prompt_hash": prompt.hash,
            "prompt_accuracy": (prompt.score or {}).get("accuracy"),
            "labels": list(get_task(task).label_words),
            "max_source_length": config.max_source_length,
            "rows": len(rows),
            "rows_in_table": len(every),
            **both_precisions(model, tokenizer, task, rows, config.max_source_length, n % 2 == 1, task, log),
        }
        del model
    return result


# -- report ----------------------------------------------------------------------------------------------------
NAMES = {"prompt_tuning": "prompt tuning", "attempt": "ATTEMPT", "lora": "LoRA"}


def report(results: dict[str, Any]) -> str:
    """The Markdown report, a pure function of the JSON."""
    training, scoring, trained = results["training"], results["evaluation"], results["trained"]["tasks"]
    methods, models = training["methods"], scoring["models"]
    n, labels = scoring["rows"], scoring["labels"]
    which = _which(n, scoring["rows_in_table"], scoring["task"])
    step_ratios = ", ".join(f"{NAMES[m]} {r['ratio_median']:.2f}×" for m, r in methods.items())
    eval_ratios = ", ".join(f"{NAMES[m]} {r['ratio']:.2f}×" for m, r in models.items())
    agree = "; ".join(
        f"{NAMES[m]} on {100 * r['agreement']['same_prediction']:.1f}% of rows (accuracy "
        f"{r['float32']['accuracy']:.1f} in float32, {r['bf16']['accuracy']:.1f} in bf16)" for m, r in models.items()
    )  # fmt: skip
    agreements = [r["agreement"] for r in models.values()]
    constant = [
        NAMES[m] for m, r in models.items() if sum(c > 0 for c in r["agreement"]["label_counts"]) == 1
    ]
    lines = [
        f"# bf16 mixed precision against float32: {results['backbone']}", "",
        "Can the main table run under `torch.autocast(\"cpu\", dtype=torch.bfloat16)` (its `mixed_precision=\"bf16\"`) "
        "on this CPU: how much faster than float32, and does it change the scores? Both precisions side by side, "
        "on the same models and inputs.", "",
        "## In short", "",
        f"- **Training step** (batch {training['batch']}, {training['length']} tokens, prompt length "
        f"{training['prompt_length']}): float32 seconds over bf16 seconds, median step: {step_ratios} (above 1: "
        "bf16 is faster).",
        f"- **Rank scoring** of {which} at step 0: float32 seconds over bf16 seconds: {eval_ratios}.",
        f"- **Scores**: the predicted label agrees for {agree}. The per-row label log-likelihoods differ by at most "
        f"{max(a['max_abs_diff'] for a in agreements):.3f} (a model's mean: up to "
        f"{max(a['mean_abs_diff'] for a in agreements):.3f}); "
        f"the gap between a row's two best labels, the one a change of label crosses, moves by at most "
        f"{max(a['max_margin_change'] for a in agreements):.3f}, against a smallest float32 gap of "
        f"{min(a['smallest_margin'] for a in agreements):.3f}.",
    ]  # fmt: skip
    if constant:
        lines.append(
            f"- At step 0, {' and '.join(constant)} give{'s' if len(constant) == 1 else ''} every row the same label, "
            "so the agreement of predictions says little; the gaps say how near a row came to changing. The "
            "trained prompts (next) are the test of rows near a tie."
        )
    trained_agreements = [r["agreement"] for r in trained.values()]
    changed_margins = [a["largest_changed_margin"] for a in trained_agreements if a["changed_rows"]]
    trained_ratios = ", ".join(f"{t} {r['ratio']:.2f}×" for t, r in trained.items())
    per_task = "; ".join(
        f"{t}: {len(r['agreement']['changed_rows'])} of {r['rows']} rows change label, accuracy "
        f"{r['float32']['accuracy']:.1f} → {r['bf16']['accuracy']:.1f}" for t, r in trained.items()
    )  # fmt: skip
    lines.append(
        f"- **Trained prompts**: the shipped {', '.join(trained)} source prompts, each on the table's first test "
        "rows of its own task (float32 seconds over bf16 seconds: "
        f"{trained_ratios}): {per_task}. Their "
        f"smallest float32 gap is {min(a['smallest_margin'] for a in trained_agreements):.3f}; bf16 moves a gap "
        f"by at most {max(a['max_margin_change'] for a in trained_agreements):.3f}"
        + (f"; the largest gap of a row that changed: {max(changed_margins):.3f}." if changed_margins else ".")
    )  # fmt: skip
    lines += [
        "", "## Training step", "",
        f"Forward + backward + AdamW step, batch {training['batch']} × {training['length']} random tokens, prompt "
        f"length {training['prompt_length']}; {training['repeats']} repeats, the precisions and methods "
        "interleaved. Ratio: float32 seconds over bf16 seconds (above 1: bf16 is faster). First loss: the first "
        "batch's loss on the same weights in each precision.", "",
        "| method | trainable params | float32 median s | bf16 median s | ratio (median) | float32 fastest s "
        "| bf16 fastest s | ratio (fastest) | first loss float32 / bf16 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]  # fmt: skip
    for method, r in methods.items():
        f, b = r["float32"], r["bf16"]
        lines.append(
            f"| {NAMES[method]} | {r['trainable_params']:,} | {f['median_s']:.2f} | {b['median_s']:.2f} | "
            f"{r['ratio_median']:.2f} | {f['fastest_s']:.2f} | {b['fastest_s']:.2f} | {r['ratio_fastest']:.2f} | "
            f"{f['first_loss']:.4f} / {b['first_loss']:.4f} |"
        )
    sources = next((r["sources"] for r in models.values() if "sources" in r), [])
    lines += [
        "", "## Rank scoring at step 0", "",
        f"{which[0].upper() + which[1:]} (the table scores at most 300), scored as its cells are (rank "
        f"classification, batches of {scoring['batch_size']}, inputs up to {scoring['max_source_length']} "
        "tokens), by the model as built (seed 0): prompt tuning, and ATTEMPT over the shipped source prompts "
        f"({', '.join(sources)}). One scoring in each precision on the same model, after a warm-up. Scores: each "
        "label word's log-likelihood. Gap: a row's best minus its second-best float32 score; its change: how "
        "much bf16 moves it (a row can change label only when the change exceeds its gap).", "",
        "| model | float32 s | bf16 s | ratio | accuracy float32 | accuracy bf16 | float32 labels "
        f"({' / '.join(labels)}) | same prediction | max abs score diff | mean abs score diff | smallest gap "
        "| largest gap change | largest gap of a changed row |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for method, r in models.items():
        a = r["agreement"]
        lines.append(
            f"| {NAMES[method]} | {r['float32']['seconds']:.1f} | {r['bf16']['seconds']:.1f} | {r['ratio']:.2f} | "
            f"{r['float32']['accuracy']:.1f} | {r['bf16']['accuracy']:.1f} | "
            f"{' / '.join(str(c) for c in a['label_counts'])} | {a['rows'] - len(a['changed_rows'])} of {a['rows']} | "
            f"{_score_cells(a)} |"
        )  # fmt: skip
    lines += [
        "", "## Trained prompts on their own task", "",
        f"Each shipped source prompt ({', '.join(trained)}) as the table's SPoT model of its own task at step 0 "
        "(`mode=\"spot\"`: the target prompt starts as the source prompt, so the trained prompt itself, untrained "
        "further), on the table's test rows of that task (rows: how many, from the first; the table scores at "
        f"most 300), scored as above (rank classification, batches of {results['trained']['batch_size']}): one "
        "scoring in each precision on the same model after a warm-up, the tasks alternating which precision goes "
        "first. Library accuracy: the test accuracy the prompt library records for the prompt (its own test rows, "
        "float32). Labels: how many rows float32 gives each label. Gap and its change: as above.", "",
        "| task | rows | library accuracy | float32 s | bf16 s | ratio | accuracy float32 | accuracy bf16 "
        "| float32 labels | rows that change label | max abs score diff | mean abs score diff | smallest gap "
        "| largest gap change | largest gap of a changed row |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for task, r in trained.items():
        a = r["agreement"]
        shipped = "—" if r["prompt_accuracy"] is None else f"{r['prompt_accuracy']:.1f}"
        counts = " / ".join(f"{label} {c}" for label, c in zip(r["labels"], a["label_counts"], strict=True))
        lines.append(
            f"| {task} | {r['rows']} of {r['rows_in_table']} | {shipped} | {r['float32']['seconds']:.1f} | "
            f"{r['bf16']['seconds']:.1f} | {r['ratio']:.2f} | {r['float32']['accuracy']:.1f} | "
            f"{r['bf16']['accuracy']:.1f} | {counts} | {len(a['changed_rows'])} | {_score_cells(a)} |"
        )  # fmt: skip
    lines += [
        "", "## How it was made", "", made_by(results), "",
        "The machine has 2 CPU cores shared with background training jobs: the seconds vary with their load, "
        "so compare the ratios (each measured with both precisions interleaved), not the seconds.",
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def _score_cells(a: dict[str, Any]) -> str:
    """An agreement's last five table cells: the score differences, the smallest gap, its largest change, and
    the largest gap of a row that changed label ("—" when none did)."""
    margin = "—" if a["largest_changed_margin"] is None else f"{a['largest_changed_margin']:.3f}"
    return (
        f"{a['max_abs_diff']:.3f} | {a['mean_abs_diff']:.3f} | {a['smallest_margin']:.3f} | "
        f"{a['max_margin_change']:.3f} | {margin}"
    )


def _which(n: int, in_table: int, task: str) -> str:
    if n == in_table:
        return f"all {n} of the main table's {task} test rows"
    return f"the first {n} of the main table's {in_table} {task} test rows"


# -- driver ------------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--report-only", action="store_true", help="measure nothing: the report of the JSON again"
    )
    parser.add_argument("--rows", type=int, default=ROWS,
                        help=f"test rows to score of each task (default {ROWS}: all the table scores)")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=None, help="training-step repeats (default 4; tiny 2)")
    add_run_arguments(parser, BENCHMARK)
    args = parser.parse_args(argv)
    name = "tiny-llama" if args.tiny else slug(BACKBONE)
    path = args.out / f"{BENCHMARK}-{name}.json"
    return measure_or_reread(path, args.report_only, lambda: run(args), report)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from benchmarks.main_table import MainTable, Options

    started = time.time()
    torch.set_num_threads(args.threads)
    sizes = dict(SIZES["tiny" if args.tiny else "full"])
    sizes["repeats"] = args.repeats or sizes["repeats"]
    if args.tiny:
        from attempt.testing import build_backbone, build_tokenizer
        from benchmarks.every_target import tiny_library

        backbone, tokenizer = build_backbone("causal"), build_tokenizer("causal")
        library = tiny_library(args.out / "runs" / "library")
    else:
        from attempt.backbones.resolve import load_backbone

        backbone, tokenizer = load_backbone(BACKBONE)[:2]
        library = LIBRARY
    options = dataclasses.replace(Options(), library=library, sources=SOURCES, tiny=args.tiny,
                                  prompt_length=sizes["prompt_length"], test_limit=ROWS)  # fmt: skip
    table = MainTable(options, args.out, args.data_dir)  # the main table's data overlay (held-out qqp rows)
    training = time_training(backbone, sizes)
    evaluation = time_scoring(table, backbone, tokenizer, args.rows, args.out)
    trained = score_trained(table, backbone, tokenizer, args.rows, args.out)
    flags = [] if args.rows == ROWS else [f"--rows {args.rows}"]
    flags += [] if args.repeats is None else [f"--repeats {args.repeats}"]
    results = {
        **provenance(BENCHMARK, args, "tiny-llama" if args.tiny else BACKBONE, started, flags),
        "training": training,
        "evaluation": evaluation,
        "trained": trained,
    }
    print(json.dumps({"training": {m: r["ratio_median"] for m, r in training["methods"].items()},
                      "evaluation": {m: r["ratio"] for m, r in evaluation["models"].items()},
                      "trained": {t: r["ratio"] for t, r in trained["tasks"].items()}}), flush=True)  # fmt: skip
    return results


if __name__ == "__main__":
    raise SystemExit(main())
