"""Bounded load test of `attempt serve` on 127.0.0.1 (issue 15): cross-task batching against one request at a
time, and one shared backbone against one backbone copy per task.

    python -m benchmarks.serve_load --tiny                      # tiny random T5: seconds per cell
    python -m benchmarks.serve_load --backbone minilm           # all-MiniLM-L6-v2 (heads), a few minutes
    python -m benchmarks.serve_load --backbone smollm2          # SmolLM2-135M-Instruct (rank classification)
    python -m benchmarks.serve_load --runs runs/attempt_glue    # a trained multi-task run of yours
    python -m benchmarks.serve_load --report-only               # serve_load.md again, from serve_load.json

Without --runs it first trains a throwaway 3-task ATTEMPT run (rte, cb, sst2; one step on a few rows of the
data mirror, random source prompts): speed does not depend on what the prompts learned. Each server is a real
`attempt serve` process (--threads, default 1), driven by httpx clients from this process. Every cell sends a
fixed number of one-input requests, tasks interleaved, from 1, 4 or 16 concurrent clients, and stops early at
--max-seconds; it reports requests/s (median of --repeats, the setups interleaved within each repeat because
the machine may be shared) and p50/p99 latency. Six setups, all started before the first measurement:

* batched: one server, --max-batch-size 32 --max-wait-ms 5: the tasks' requests share forward passes, a
  batch cut into forwards of similar lengths (--max-padding 0.25, the default);
* batched, one forward: the same with --max-padding inf: one forward per batch, however padded;
* batched, no wait: --max-wait-ms 0: a batch is whatever queued while the model was busy (no added delay);
* one at a time: the same server with --max-batch-size 1 --max-wait-ms 0;
* a copy per task: one batched server per task, each holding its own backbone, each request sent to its
  task's server (what serving each task's prompts from its own model copy costs);
* batched, equal threads: the batched server with as many threads as the copies have together (at most the
  machine's cores), so the shared backbone and the copies compete with the same CPU.

Memory is each server process's peak resident set (VmHWM, Linux), summed over the per-task copies.
Writes serve_load.json and serve_load.md under --out (default benchmarks/results/serve_load), one section per
backbone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from attempt.utils import storage
from attempt.utils.reading import read_json
from benchmarks.common import DATA_DIR, results_dir, write_json

BACKBONES = {
    "minilm": "sentence-transformers/all-MiniLM-L6-v2",
    "smollm2": "HuggingFaceTB/SmolLM2-135M-Instruct",
}
TASKS = ("rte", "cb", "sst2")
CONCURRENCY = (1, 4, 16)
BATCHED = ("--max-batch-size", "32", "--max-wait-ms", "5")
ONE_FORWARD = (*BATCHED, "--max-padding", "inf")  # never cut a batch by length (the GPU setting)
NO_WAIT = (
    "--max-batch-size",
    "32",
    "--max-wait-ms",
    "0",
)  # batches only what queued while the model was busy
ONE_AT_A_TIME = ("--max-batch-size", "1", "--max-wait-ms", "0")


# ------------------------------------------------------------------------------------------- the runs
def make_run(root: Path, backbone: str | None, data_dir: Path) -> Path:
    """A throwaway 3-task ATTEMPT run: one training step (only its shapes matter for speed)."""
    import torch

    from attempt.config import TrainConfig
    from attempt.prompts.library import PromptLibrary, SourcePrompt
    from attempt.training.loop import train

    if backbone is None:  # the tests' tiny random T5, saved so the server can load it by path
        from attempt.testing import build_backbone, build_tokenizer

        backbone = str(root / "tiny-t5")
        build_backbone("seq2seq").save_pretrained(backbone)
        build_tokenizer("seq2seq").save_pretrained(backbone)
    from attempt.backbones.resolve import load_backbone

    hidden = load_backbone(backbone).model.get_input_embeddings().weight.shape[1]
    library = PromptLibrary(root / "library")
    for seed, name in enumerate(("mnli", "qnli")):
        torch.manual_seed(seed)
        library.add(SourcePrompt(name, torch.randn(10, hidden) * 0.5, task=name, backbone=backbone))
    config = TrainConfig(
        mode="attempt", backbone=backbone, tasks=TASKS, library=str(root / "library"), output_dir=str(root / "run"),
        data_dir=str(data_dir), attempt={"prompt_length": 10}, max_steps=1, batch_size=4, eval_every=1,
        train_limit=8, eval_limit=4, max_source_length=128, max_target_length=8, seed=0,
    )  # fmt: skip
    train(config, progress=False)
    return Path(config.output_dir)


def make_inputs(count: int, seed: int = 0) -> list[tuple[str, dict[str, str]]]:
    """`count` (task, input) pairs, tasks interleaved, 4-24 words per field."""
    from attempt.tasks import get_task
    from attempt.testing import WORDS

    rng, words = random.Random(seed), [w for w in WORDS if w.isalpha()]
    pairs = []
    for index in range(count):
        task = TASKS[index % len(TASKS)]
        fields = get_task(task).fields
        pairs.append((task, {f: " ".join(rng.choices(words, k=rng.randint(4, 24))) for f in fields}))
    return pairs


# ---------------------------------------------------------------------------------------- the servers
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def spawn_server(run_dir: Path, options: tuple[str, ...], threads: int) -> tuple[subprocess.Popen, str]:
    """An `attempt serve` process starting on a free loopback port (see `wait_until_up`)."""
    port = _free_port()
    command = [sys.executable, "-m", "attempt.cli", "serve", str(run_dir), "--port", str(port),
               "--threads", str(threads), "--log-level", "warning", *options]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return process, f"http://127.0.0.1:{port}"


def wait_until_up(process: subprocess.Popen, url: str, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"attempt serve exited with {process.returncode}: {process.stderr.read()[-2000:]}"
            )
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    raise TimeoutError(f"attempt serve did not answer on {url} within {seconds} s")


def peak_rss_mib(process: subprocess.Popen) -> float | None:
    """The process's peak resident set (VmHWM) in MiB; None where /proc is missing (not Linux)."""
    status = Path(f"/proc/{process.pid}/status")
    if not status.is_file():
        return None
    match = re.search(r"VmHWM:\s+(\d+) kB", status.read_text())
    return int(match.group(1)) / 1024 if match else None


def stop_server(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)  # graceful: uvicorn drains, then exits
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()


def batch_stats(url: str) -> tuple[float, float]:
    """(batches, inputs) predicted so far, from the server's Prometheus metrics."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    count = re.search(r"^attempt_serve_batch_size_count (\S+)$", text, re.M)
    total = re.search(r"^attempt_serve_batch_size_sum (\S+)$", text, re.M)
    return (float(count.group(1)), float(total.group(1))) if count and total else (0.0, 0.0)


# ------------------------------------------------------------------------------------------- the load
def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]  # nearest rank


async def _drive(
    urls: dict[str, str], pairs: list, concurrency: int, max_seconds: float
) -> tuple[list[float], float]:
    """Send every pair as a one-input request from `concurrency` clients; stop issuing after max_seconds."""
    latencies: list[float] = []
    queue = list(reversed(pairs))
    started = time.perf_counter()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def client_loop() -> None:
            while queue and time.perf_counter() - started < max_seconds:
                task, row = queue.pop()
                sent = time.perf_counter()
                answer = await client.post(f"{urls[task]}/v1/predict", json={"task": task, "inputs": [row]})
                answer.raise_for_status()
                latencies.append(time.perf_counter() - sent)

        await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started


def measure(urls: dict[str, str], pairs: list, concurrency: int, max_seconds: float) -> dict[str, Any]:
    """One cell once: the latencies, the seconds, and the batches and inputs the servers predicted."""
    before = [batch_stats(url) for url in set(urls.values())]
    latencies, elapsed = asyncio.run(_drive(urls, pairs, concurrency, max_seconds))
    after = [batch_stats(url) for url in set(urls.values())]
    batches = sum(a[0] - b[0] for a, b in zip(after, before, strict=True))
    inputs = sum(a[1] - b[1] for a, b in zip(after, before, strict=True))
    return {"latencies": latencies, "seconds": elapsed, "batches": batches, "inputs": inputs}


def summarise(concurrency: int, repeats: list[dict[str, Any]]) -> dict[str, Any]:
    """The median requests/s over the repeats; p50/p99 over every latency of the cell; the mean batch."""
    rates = sorted(len(r["latencies"]) / r["seconds"] for r in repeats)
    latencies = [latency for r in repeats for latency in r["latencies"]]
    batches = sum(r["batches"] for r in repeats)
    return {
        "concurrency": concurrency, "requests": len(latencies), "requests_per_s": round(rates[len(rates) // 2], 2),
        "requests_per_s_range": [round(rates[0], 2), round(rates[-1], 2)],
        "p50_ms": round(1000 * _percentile(latencies, 0.5), 1), "p99_ms": round(1000 * _percentile(latencies, 0.99), 1),
        "mean_batch": round(sum(r["inputs"] for r in repeats) / batches, 2) if batches else None,
    }  # fmt: skip


SETUPS = {  # name: (serve options, one server per task, threads per server: None = --threads)
    "batched": (BATCHED, False, None),
    "batched_one_forward": (ONE_FORWARD, False, None),
    "batched_no_wait": (NO_WAIT, False, None),
    "one_at_a_time": (ONE_AT_A_TIME, False, None),
    "copy_per_task": (BATCHED, True, None),
    # one shared server with --threads × the copies' count (at most the cores): the copies' CPU, in one process
    "batched_equal_threads": (BATCHED, False, "copies"),
}


def start_setups(run_dir: Path, threads: int) -> dict[str, dict[str, Any]]:
    """Every setup's servers, started together (idle servers cost no CPU): {name: {"urls", "processes"}}."""
    started: dict[str, dict[str, Any]] = {}
    for name, (options, per_task, setup_threads) in SETUPS.items():
        count = min(threads * len(TASKS), os.cpu_count() or 1) if setup_threads == "copies" else threads
        servers = [spawn_server(run_dir, options, count) for _ in (TASKS if per_task else TASKS[:1])]
        urls = {task: servers[i if per_task else 0][1] for i, task in enumerate(TASKS)}
        started[name] = {"urls": urls, "processes": [process for process, _ in servers]}
    for setup in started.values():
        for process, url in zip(setup["processes"], dict.fromkeys(setup["urls"].values()), strict=True):
            wait_until_up(process, url)
    return started


def run_all(run_dir: Path, pairs: list, args) -> dict[str, dict[str, Any]]:
    """Measure every setup at every concurrency, `args.repeats` times, the setups interleaved within each
    repeat (a burst of load from other jobs then hits every setup alike); then stop the servers."""
    setups = start_setups(run_dir, args.threads)
    raw: dict[tuple[str, int], list[dict]] = {}
    try:
        for setup in setups.values():  # warm-up: tokenizers, allocator, the first batch shapes
            asyncio.run(_drive(setup["urls"], pairs[:12], 4, args.max_seconds))
        for _ in range(args.repeats):
            for concurrency in CONCURRENCY:
                for name, setup in setups.items():
                    raw.setdefault((name, concurrency), []).append(
                        measure(setup["urls"], pairs, concurrency, args.max_seconds)
                    )
    finally:
        memory = {name: [peak_rss_mib(p) for p in setup["processes"]] for name, setup in setups.items()}
        for setup in setups.values():
            for process in setup["processes"]:
                stop_server(process)
    results = {}
    for name, setup in setups.items():
        cells = [summarise(c, raw[(name, c)]) for c in CONCURRENCY if (name, c) in raw]
        total = None if None in memory[name] else round(sum(memory[name]), 1)
        results[name] = {
            "setup": name,
            "servers": len(setup["processes"]),
            "peak_rss_mib": total,
            "cells": cells,
        }
        print(f"{name}: " + "; ".join(f"c={c['concurrency']} {c['requests_per_s']} req/s p50 {c['p50_ms']} ms" for c in cells)
              + f"; peak RSS {total} MiB", flush=True)  # fmt: skip
    return results


# ------------------------------------------------------------------------------------------ the report
def ratios(setups: dict[str, dict]) -> dict[str, Any]:
    """Batched over one-at-a-time and over per-task copies (requests/s per concurrency), and memory."""

    def per_c(a: str, b: str) -> dict[str, float]:
        pairs = zip(setups[a]["cells"], setups[b]["cells"], strict=True)
        return {str(x["concurrency"]): round(x["requests_per_s"] / y["requests_per_s"], 2) for x, y in pairs}

    memory = setups["copy_per_task"]["peak_rss_mib"], setups["batched"]["peak_rss_mib"]
    return {
        "batched_vs_one_at_a_time_requests_per_s": per_c("batched", "one_at_a_time"),
        "batched_one_forward_vs_one_at_a_time_requests_per_s": per_c("batched_one_forward", "one_at_a_time"),
        "batched_no_wait_vs_one_at_a_time_requests_per_s": per_c("batched_no_wait", "one_at_a_time"),
        "batched_vs_copy_per_task_requests_per_s": per_c("batched", "copy_per_task"),
        **(
            {
                "batched_equal_threads_vs_copy_per_task_requests_per_s": per_c(
                    "batched_equal_threads", "copy_per_task"
                )
            }
            if "batched_equal_threads" in setups
            else {}
        ),
        "copy_per_task_vs_batched_memory": round(memory[0] / memory[1], 2) if None not in memory else None,
    }


def write_report(result: dict | None, out: Path) -> None:
    """serve_load.json keeps one result per backbone (a run on another backbone is added beside the others);
    serve_load.md shows them all. `result` None writes the report of the JSON as it is."""
    path = out / "serve_load.json"
    results = read_json(path, "Delete it to start the results over.") if path.is_file() else {}
    if result is not None:
        results[result["backbone"]] = result
        write_json(path, results)
    lines = [
        "# attempt serve load test",
        "",
        "Written by benchmarks/serve_load.py; one section per backbone.",
        "",
    ]
    for each in results.values():
        lines += _section(each)
    storage.write_text(out / "serve_load.md", "\n".join(lines))


def _section(result: dict) -> list[str]:
    lines = [
        f"## {result['backbone']}", "",
        f"{result['requests']} one-input requests per cell (tasks {', '.join(TASKS)} interleaved; at most "
        f"{result['max_seconds']} s), {result['repeats']} repeats with the setups interleaved: req/s is the median "
        f"repeat (range in the JSON), p50/p99 over all of them. Servers on 127.0.0.1 with --threads "
        f"{result['threads']}; {result['machine']}, shared with other jobs: compare the ratios, not the absolute "
        "numbers.", "",
        "| setup | servers | peak RSS (MiB) | clients | requests (all repeats) | req/s | p50 (ms) | p99 (ms) | mean batch |",
        "|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for setup in result["setups"].values():
        for cell in setup["cells"]:
            lines.append(
                f"| {setup['setup']} | {setup['servers']} | {setup['peak_rss_mib']} | {cell['concurrency']} | "
                f"{cell['requests']} | {cell['requests_per_s']} | {cell['p50_ms']} | {cell['p99_ms']} | {cell['mean_batch']} |"
            )
    r = result["ratios"]
    lines += ["", "| ratio | 1 client | 4 clients | 16 clients |", "|---|---|---|---|"]
    for name, label in (
        ("batched_vs_one_at_a_time_requests_per_s", "req/s: batched / one at a time"),
        (
            "batched_one_forward_vs_one_at_a_time_requests_per_s",
            "req/s: batched, one forward / one at a time",
        ),
        ("batched_no_wait_vs_one_at_a_time_requests_per_s", "req/s: batched, no wait / one at a time"),
        ("batched_vs_copy_per_task_requests_per_s", "req/s: batched / a backbone copy per task"),
        (
            "batched_equal_threads_vs_copy_per_task_requests_per_s",
            "req/s: batched with the copies' threads / a backbone copy per task",
        ),
    ):
        if name not in r:  # a result from before that setup existed
            continue
        lines.append(f"| {label} | " + " | ".join(f"{r[name][str(c)]}×" for c in CONCURRENCY) + " |")
    lines += ["", f"Memory, a backbone copy per task / one shared backbone: {r['copy_per_task_vs_batched_memory']}× "
              "(peak RSS summed over the servers).", ""]  # fmt: skip
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--tiny", action="store_true", help="the tests' tiny random T5 (default)")
    which.add_argument(
        "--backbone", choices=sorted(BACKBONES), help="train the throwaway run on this backbone"
    )
    which.add_argument("--runs", type=Path, help="a trained multi-task run with the tasks rte, cb and sst2")
    parser.add_argument("--requests", type=int, default=32, help="requests per cell and repeat (default 32)")
    parser.add_argument(
        "--max-seconds", type=float, default=20.0, help="stop a cell's clients after this (default 20)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="measure every cell this many times (default 3)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads per server (default 1)")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--out", type=Path, default=results_dir("serve_load"))
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="measure nothing: serve_load.md again, from serve_load.json",
    )
    args = parser.parse_args(argv)
    if args.report_only:
        write_report(None, args.out)
        print(f"wrote {args.out / 'serve_load.md'} from {args.out / 'serve_load.json'}")
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        run_dir = args.runs or make_run(Path(scratch), BACKBONES.get(args.backbone), args.data_dir)
        pairs = make_inputs(args.requests)
        setups = run_all(run_dir, pairs, args)
    result = {
        "backbone": args.backbone or ("tiny-t5" if not args.runs else str(args.runs)), "requests": args.requests,
        "repeats": args.repeats,
        "max_seconds": args.max_seconds, "threads": args.threads,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "setups": setups, "ratios": ratios(setups),
    }  # fmt: skip
    write_report(result, args.out)
    print(json.dumps(result["ratios"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
