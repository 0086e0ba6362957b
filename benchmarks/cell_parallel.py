"""On this 2-core CPU, does the main table finish more cells an hour as one process of two threads or as two
processes of one thread each, running different cells side by side? Both ways, interleaved, on SmolLM2-135M-Instruct
over real rte rows.

    python -m benchmarks.cell_parallel                       # about 8 min; pause other jobs first (see below)
    python -m benchmarks.cell_parallel --report-only         # the report again, from the JSON alone
    python -m benchmarks.cell_parallel --tiny --out /tmp/x   # the tests' tiny causal LM (seconds)

Why it matters: the main table (issue 22) is tens of CPU hours of cells that are independent of one another, and
a cell is small (batch 8, 135M parameters): torch's second intra-op thread speeds one cell up by much less than
2×, while a second process runs a second cell on the other core (`benchmarks.main_table` lets several processes
share a table: each claims the cell it runs). What a cell spends its minutes on is measured as two workloads:
training steps (prompt tuning, bf16 autocast, the LM head on the label positions, as the cells train) and rank
scoring (float32, batches of 32 validation rows, as the cells score at step 0, every 100 steps and at the end).

How: each workload runs in fresh processes that load the backbone and warm up first, then wait; the clock runs
from the moment they are told to go until the last is done (loading is not timed: a cell loads once). "One
process" is one of `--threads 2`; "two processes" are two of one thread each, started together, each doing the
same work on its own copy of the model (what two cells do). Throughput is the work done over that wall time;
the ratio is two processes' over one process's (above 1: two processes finish more). The setups alternate
within each repeat, the order reversed every other repeat. Other jobs on the machine distort both: pause them
(`kill -STOP`) for the run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Any

from benchmarks.common import REPO, add_run_arguments, made_by, measure_or_reread, provenance, slug

BACKBONE = "HuggingFaceTB/SmolLM2-135M-Instruct"
BENCHMARK = "cell_parallel"
WORKLOADS = ("training", "scoring")
SETUPS = {
    "one process, 2 threads": (1, 2),
    "two processes, 1 thread each": (2, 1),
}  # name: (processes, threads)
SIZES = {  # per process: training steps (batch 8, prompt 20, as a cell) and scored rows (batches of 32)
    "full": {"steps": 20, "rows": 96, "repeats": 3},
    "tiny": {"steps": 3, "rows": 8, "repeats": 2},
}
UNITS = {"training": "steps", "scoring": "rows"}


# ---------------------------------------------------------------------------------------- one child process
def child(workload: str, tiny: bool, data_dir: str) -> None:
    """Load, warm up, say "ready", wait for a line on stdin, do the workload, print its seconds as JSON."""
    from pathlib import Path

    from attempt.data.sources import load_split
    from attempt.evaluation.evaluate import evaluate
    from benchmarks.efficiency import build_method, load
    from benchmarks.label_logits import SIZES as STEP_SIZES
    from benchmarks.label_logits import step, training_batches

    sizes = SIZES["tiny" if tiny else "full"]
    backbone, tokenizer, family = load("tiny-causal" if tiny else BACKBONE, tiny)
    model, _, optimizer, _ = build_method("prompt_tuning", backbone, family, 4 if tiny else 20)
    if workload == "training":
        step_sizes = {**STEP_SIZES["tiny" if tiny else "full"], "batches": 4}
        batches = training_batches(tokenizer, Path(data_dir), step_sizes)

        def work(count: int) -> None:
            for i in range(count):
                step(model, optimizer, batches[i % len(batches)], True, "bf16")
    else:
        rows = list(load_split("rte", "validation", Path(data_dir)))[: sizes["rows"]]
        model.eval()

        def work(count: int) -> None:
            evaluate(
                model, tokenizer, {"rte": rows[:count]}, method="rank", batch_size=32, max_source_length=128
            )

    work(2 if workload == "training" else 8)  # warm-up: allocator, oneDNN's kernels
    print("ready", flush=True)
    sys.stdin.readline()
    start = time.perf_counter()
    work(sizes["steps" if workload == "training" else "rows"])
    print(json.dumps({"seconds": time.perf_counter() - start}), flush=True)


# ---------------------------------------------------------------------------------------- the parent
def measure(workload: str, processes: int, threads: int, args: argparse.Namespace) -> dict[str, Any]:
    """Start `processes` children of `threads` threads, let them go together; the wall time until the last ends."""
    command = [sys.executable, "-m", "benchmarks.cell_parallel", "--child", workload, "--threads", str(threads),
               "--data-dir", str(args.data_dir), *(["--tiny"] if args.tiny else [])]  # fmt: skip
    env = {**_environment(), "OMP_NUM_THREADS": str(threads)}
    children = [subprocess.Popen(command, cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 text=True) for _ in range(processes)]  # fmt: skip
    for c in children:  # every one loaded and warm before the clock starts
        while c.stdout.readline().strip() != "ready":
            if c.poll() is not None:
                raise SystemExit(f"a {workload} child ended before it was ready (exit {c.returncode})")
    start = time.perf_counter()
    for c in children:
        c.stdin.write("go\n")
        c.stdin.flush()
    each = [json.loads(c.communicate()[0].strip().splitlines()[-1])["seconds"] for c in children]
    wall = time.perf_counter() - start
    work = SIZES["tiny" if args.tiny else "full"][UNITS[workload]] * processes
    return {"wall_s": wall, "process_s": each, "work": work, "per_s": work / wall}


def _environment() -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}", "TQDM_DISABLE": "1"}


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.time()
    sizes = dict(SIZES["tiny" if args.tiny else "full"])
    sizes["repeats"] = args.repeats or sizes["repeats"]
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {w: {s: [] for s in SETUPS} for w in WORKLOADS}
    order = [(w, s) for w in WORKLOADS for s in SETUPS]
    for repeat in range(sizes["repeats"]):
        for workload, setup in order if repeat % 2 == 0 else reversed(order):
            runs[workload][setup].append(measure(workload, *SETUPS[setup], args))
            print(f"repeat {repeat + 1}: {workload}, {setup}: {runs[workload][setup][-1]['per_s']:.2f}/s",
                  flush=True)  # fmt: skip
    workloads = {}
    for workload in WORKLOADS:
        medians = {s: statistics.median(r["per_s"] for r in runs[workload][s]) for s in SETUPS}
        one, two = (medians[s] for s in SETUPS)
        workloads[workload] = {"runs": runs[workload], "median_per_s": medians, "ratio": two / one}
    flags = [] if args.repeats is None else [f"--repeats {args.repeats}"]
    return {
        **provenance(BENCHMARK, args, "tiny-llama" if args.tiny else BACKBONE, started, flags),
        **sizes,
        "workloads": workloads,
    }


def report(results: dict[str, Any]) -> str:
    """The Markdown report of one run's JSON."""
    w = results["workloads"]
    lines = [
        f"# One cell on two threads, or two cells on one each: {results['backbone']}", "",
        "Does the main table finish more cells an hour as two processes of one thread each (two cells side by "
        "side) than as one process of two threads? `benchmarks/cell_parallel.py` says how it measures.", "",
        "## Verdict", "",
        f"- **Training** ({results['steps']} steps a process): two processes do "
        f"{w['training']['ratio']:.2f}× the steps an hour of one process of two threads.",
        f"- **Scoring** ({results['rows']} rte rows a process): {w['scoring']['ratio']:.2f}× the rows an hour.",
        "- Above 1: run two cells at once (what `scripts/background.sh start` does when no source trains).", "",
        "## Runs", "",
        "Work per second over the wall time from 'go' to the last process's end (loading and warm-up not "
        "timed), each repeat; median in bold.", "",
        "| workload | setup | per second, each repeat | median | wall s, each repeat |",
        "|---|---|---|---:|---|",
    ]  # fmt: skip
    for workload in WORKLOADS:
        for setup in SETUPS:
            each = w[workload]["runs"][setup]
            lines.append(
                f"| {workload} ({UNITS[workload]}) | {setup} | {_listed(each, 'per_s', 2)} | "
                f"**{w[workload]['median_per_s'][setup]:.2f}** | {_listed(each, 'wall_s', 1)} |"
            )
    lines += ["", "## How it was made", "", made_by(results) + " The threads column of that sentence is the "
              "parent's; each setup sets its children's (above)."]  # fmt: skip
    return "\n".join(lines) + "\n"


def _listed(runs: list[dict[str, Any]], key: str, digits: int) -> str:
    return ", ".join(f"{run[key]:.{digits}f}" for run in runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report-only", action="store_true", help="measure nothing: the JSON's report again")
    parser.add_argument(
        "--repeats", type=int, default=None, help="repeats of every setup (default 3; tiny 2)"
    )
    parser.add_argument("--child", choices=WORKLOADS, help=argparse.SUPPRESS)  # one measured process
    add_run_arguments(parser, BENCHMARK)
    args = parser.parse_args(argv)
    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        child(args.child, args.tiny, str(args.data_dir))
        return 0
    path = args.out / f"{BENCHMARK}-{'tiny-llama' if args.tiny else slug(BACKBONE)}.json"
    return measure_or_reread(path, args.report_only, lambda: run(args), report)


if __name__ == "__main__":
    raise SystemExit(main())
