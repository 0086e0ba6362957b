"""Does running a decoder's LM head on the label positions alone (``loss_only=True``, what the training loop and
`AttemptTrainer` pass) make a training step faster, with the same loss and gradients? Both ways side by side in
one run, on SmolLM2-135M-Instruct over real rte rows.

    python -m benchmarks.label_logits                       # about 10 min on one thread of the 2-core CPU
    python -m benchmarks.label_logits --report-only         # the report again, from the JSON alone
    python -m benchmarks.label_logits --tiny --out /tmp/x   # the tests' tiny causal LM (seconds)

Why it can matter: a decoder-only training row is input + label words, and the loss reads the next-token
distribution at the one to three positions that predict a label word. Computing the LM head (d × vocabulary:
576 × 49,152 for SmolLM2, about a fifth of its forward pass) and a float32 softmax over every position of the
row, as ``backbone(labels=...)`` does, spends most of that on logits nobody reads.

What is measured: a training step (forward + backward + AdamW step) of prompt tuning, ATTEMPT (over
`benchmarks.efficiency`'s random source prompts) and LoRA, at the main table's batch (8) and prompt length (20),
on the first batches of rte's training rows as the training loop batches them (`Collator` with the table's
max_source_length 128, labels on the label words only; length-grouped `BatchStream` batches), in float32 and
under bf16 autocast (the main table trains in bf16). Each (method, precision) runs both ways on the same model
and batches, the two ways and the methods alternating within every repeat, the order reversed every other repeat
(the machine is shared: a slow spell falls on both). Kept: the median seconds per step each way and their ratio,
and, on the first batch in float32 without dropout, the largest difference between the two ways of the loss and
of any gradient entry.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.common import add_run_arguments, made_by, measure_or_reread, provenance, slug
from benchmarks.precision import autocast

BACKBONE = "HuggingFaceTB/SmolLM2-135M-Instruct"
BENCHMARK = "label_logits"
TASK = "rte"
METHODS = ("prompt_tuning", "attempt", "lora")
PRECISIONS = ("float32", "bf16")
WAYS = {"all positions": False, "label positions": True}  # the name of each way: its loss_only
NAMES = {"prompt_tuning": "prompt tuning", "attempt": "ATTEMPT", "lora": "LoRA"}
SIZES = {  # batch, prompt length and max_source_length: the main table's (Options, rte)
    "full": {"batch": 8, "prompt_length": 20, "max_source_length": 128, "batches": 3, "repeats": 3},
    "tiny": {"batch": 2, "prompt_length": 4, "max_source_length": 32, "batches": 2, "repeats": 2},
}


def training_batches(tokenizer, data_dir: Path, sizes: dict[str, int]) -> list[Any]:
    """The first `batches` length-grouped training batches of rte's training rows, as the loop collates them."""
    from attempt.data.collate import Collator, make_examples
    from attempt.data.sources import load_split
    from benchmarks.efficiency import grouped_batches

    rows = list(load_split(TASK, "train", data_dir))[: sizes["batch"] * sizes["batches"] * 4]
    collator = Collator(tokenizer, "causal", (TASK,), max_source_length=sizes["max_source_length"])
    grouped = grouped_batches(make_examples(TASK, rows), collator, sizes["batch"])
    return [dict(collator(chunk)) for chunk in grouped[: sizes["batches"]]]


def step(model, optimizer, batch: dict[str, Any], loss_only: bool, precision: str) -> float:
    """One training step (the forward under `precision`'s autocast, as accelerate wraps it); its loss."""
    optimizer.zero_grad(set_to_none=True)
    with autocast(precision):
        loss = model(**batch, loss_only=loss_only).loss
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def differences(model, batch: dict[str, Any]) -> dict[str, float]:
    """The largest |loss| and |gradient entry| difference between the two ways on `batch` (float32, eval mode:
    no dropout, so both ways see the same network), and the largest gradient entry (its scale)."""
    model.eval()
    results = []
    for loss_only in WAYS.values():
        model.zero_grad(set_to_none=True)
        loss = model(**batch, loss_only=loss_only).loss
        loss.backward()
        grads = {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((float(loss.detach()), grads))
    model.zero_grad(set_to_none=True)
    model.train()
    (full, full_grads), (fast, fast_grads) = results
    return {
        "loss_all": full,
        "loss_labels": fast,
        "loss_abs_diff": abs(full - fast),
        "grad_max_abs_diff": max(float((full_grads[n] - fast_grads[n]).abs().max()) for n in full_grads),
        "grad_max_abs": max(float(g.abs().max()) for g in full_grads.values()),
    }


def time_steps(backbone, batches: list[Any], sizes: dict[str, int], log=print) -> dict[str, Any]:
    """Median seconds per step of every (method, precision) each way (see the module docstring)."""
    from benchmarks.efficiency import build_method

    # prompt tuning and ATTEMPT wrap the backbone itself (frozen); LoRA gets its own copy (build_method)
    built = {m: build_method(m, backbone, "causal", sizes["prompt_length"]) for m in METHODS}
    methods: dict[str, Any] = {}
    for method, (model, _, optimizer, trainable) in built.items():
        methods[method] = {"trainable_params": trainable, "first_batch": differences(model, batches[0])}
        for precision in PRECISIONS:  # warm-up: allocator, lazy init, oneDNN's bf16 kernels
            for loss_only in WAYS.values():
                step(model, optimizer, batches[0], loss_only, precision)
        log(f"{method}: {methods[method]['first_batch']}")
    runs = {(m, p, w): [] for m in METHODS for p in PRECISIONS for w in WAYS}
    order = list(runs)
    for repeat in range(sizes["repeats"]):
        for method, precision, way in order if repeat % 2 == 0 else reversed(order):
            model, _, optimizer, _ = built[method]
            for batch in batches:
                start = time.perf_counter()
                step(model, optimizer, batch, WAYS[way], precision)
                runs[method, precision, way].append(time.perf_counter() - start)
        log(f"repeat {repeat + 1} of {sizes['repeats']} done")
    for method in METHODS:
        for precision in PRECISIONS:
            each = {w: {"median_s": statistics.median(runs[method, precision, w]),
                        "runs_s": runs[method, precision, w]} for w in WAYS}  # fmt: skip
            ratio = each["all positions"]["median_s"] / each["label positions"]["median_s"]
            methods[method][precision] = {**each, "ratio": ratio}
    return methods


def shape(batches: list[Any]) -> dict[str, float]:
    """The rows' mean length and the mean number of positions the LM head runs on each way, per batch."""
    lengths = [float(b["attention_mask"].sum(-1).float().mean()) for b in batches]
    padded = [b["input_ids"].shape[1] for b in batches]
    kept = [int((b["labels"][:, 1:] != -100).any(0).sum()) for b in batches]
    return {
        "mean_row_tokens": statistics.mean(lengths),
        "mean_padded_length": statistics.mean(padded),
        "mean_label_positions": statistics.mean(kept),
    }


def report(results: dict[str, Any]) -> str:
    """The Markdown report of one run's JSON."""
    s, methods = results["shape"], results["methods"]
    ratios = [methods[m][p]["ratio"] for m in METHODS for p in PRECISIONS]
    worst = max(methods[m]["first_batch"]["grad_max_abs_diff"] for m in METHODS)
    lines = [
        f"# The LM head on the label positions only: {results['backbone']}", "",
        "Does `loss_only=True` (what training passes: a decoder runs its LM head on the positions that predict a "
        "label word, not on the whole row) make a training step faster, with the same loss and gradients? "
        "`benchmarks/label_logits.py` says how it measures.", "",
        "## Verdict", "",
        f"- **Speed**: a step's median time with the LM head on all positions over its time on the label "
        f"positions only: {statistics.median(ratios):.2f}× (median of {len(ratios)} method × precision pairs; "
        f"range {min(ratios):.2f}-{max(ratios):.2f}×; above 1: faster with the label positions only).",
        f"- **Same training**: on the first batch (float32) the loss differs by at most "
        f"{max(methods[m]['first_batch']['loss_abs_diff'] for m in METHODS):.1e} and any gradient entry by at most "
        f"{worst:.1e} (largest entry {max(methods[m]['first_batch']['grad_max_abs'] for m in METHODS):.1e}); "
        "tests/test_modeling.py and tests/test_baselines.py pin the equality on every family.",
        "",
        "## Training step", "",
        f"Batch {results['batch']} of rte's training rows (mean {s['mean_row_tokens']:.0f} tokens a row, padded "
        f"to {s['mean_padded_length']:.0f}), prompt length {results['prompt_length']}: the LM head on "
        f"{s['mean_padded_length'] + 1:.0f} positions a row (all: every input position and the prompt's last, as "
        "training ran before `loss_only`; LoRA's rows have no prompt, one fewer) or on "
        f"{s['mean_label_positions']:.1f} (label positions: any row's "
        f"label-word positions, one index list for the batch). {results['batches']} batches × "
        f"{results['repeats']} repeats each way; ratio: all positions' median over label positions' median "
        "(above 1: faster with label positions only).", "",
        "| method | trainable params | precision | all positions median s | label positions median s | ratio "
        "| first-batch loss (all / labels) | max gradient diff |",
        "|---|---:|---|---:|---:|---:|---|---:|",
    ]  # fmt: skip
    for method in METHODS:
        r = methods[method]
        first = r["first_batch"]
        for precision in PRECISIONS:
            p = r[precision]
            lines.append(
                f"| {NAMES[method]} | {r['trainable_params']:,} | {precision} | "
                f"{p['all positions']['median_s']:.2f} | {p['label positions']['median_s']:.2f} | "
                f"{p['ratio']:.2f} | {first['loss_all']:.6f} / {first['loss_labels']:.6f} | "
                f"{first['grad_max_abs_diff']:.1e} |"
            )
    lines += [
        "", "## How it was made", "",
        made_by(results) + " Compare the ratios, not the seconds: each pair ran interleaved on the same model and "
        "batches.",
    ]  # fmt: skip
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from benchmarks.efficiency import load

    started = time.time()
    torch.set_num_threads(args.threads)
    sizes = dict(SIZES["tiny" if args.tiny else "full"])
    sizes["repeats"] = args.repeats or sizes["repeats"]
    backbone, tokenizer, _ = load("tiny-causal" if args.tiny else BACKBONE, args.tiny)
    batches = training_batches(tokenizer, args.data_dir, sizes)
    methods = time_steps(backbone, batches, sizes)
    flags = [] if args.repeats is None else [f"--repeats {args.repeats}"]
    results = {
        **provenance(BENCHMARK, args, "tiny-llama" if args.tiny else BACKBONE, started, flags),
        **{k: sizes[k] for k in ("batch", "prompt_length", "max_source_length", "batches", "repeats")},
        "shape": shape(batches),
        "methods": methods,
    }
    ratios = {m: {p: round(methods[m][p]["ratio"], 3) for p in PRECISIONS} for m in METHODS}
    print(json.dumps(ratios), flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report-only", action="store_true", help="measure nothing: the JSON's report again")
    parser.add_argument("--repeats", type=int, default=None, help="repeats of every pair (default 3; tiny 2)")
    add_run_arguments(parser, BENCHMARK)
    args = parser.parse_args(argv)
    path = args.out / f"{BENCHMARK}-{'tiny-llama' if args.tiny else slug(BACKBONE)}.json"
    return measure_or_reread(path, args.report_only, lambda: run(args), report)


if __name__ == "__main__":
    raise SystemExit(main())
