"""`attempt serve`: answer HTTP prediction requests for one or more trained runs over one frozen backbone."""

from __future__ import annotations

import argparse
import contextlib

from attempt.cli.options import UsageError
from attempt.cli.runs import add_device_map_arguments, device_map_options


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `attempt serve`."""
    parser.add_argument(
        "run_dirs",
        nargs="+",
        metavar="RUN_DIR",
        help="training runs' output_dirs, all on one backbone (a multi-task run brings all its tasks)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument(
        "--port", type=int, default=8000, help="port to listen on (default: 8000; 0 = any free port)"
    )
    parser.add_argument(
        "--backbone", help="load the backbone from here instead of the one recorded in the runs"
    )
    parser.add_argument(
        "--method",
        choices=("rank", "generate"),
        help="rank label words or generate, for classification on LM backbones (default: each run's)",
    )
    parser.add_argument(
        "--max-batch-size",
        type=int,
        default=32,
        help="inputs per model batch, any tasks mixed (1 = no batching; default: 32)",
    )
    parser.add_argument(
        "--max-wait-ms",
        type=float,
        default=5.0,
        help="how long a batch's first input waits for others to join (default: 5)",
    )
    parser.add_argument(
        "--max-padding",
        type=float,
        default=0.25,
        help="cut a batch into forwards of similar lengths so that padding stays under this fraction "
        "of the real tokens (CPU: 0.25, the default; GPU: 100, one forward per batch)",
    )
    parser.add_argument("--max-inputs", type=int, default=64, help="inputs per request at most (default: 64)")
    parser.add_argument(
        "--max-queue",
        type=int,
        default=1024,
        help="inputs waiting at most; beyond that requests get 503 (default: 1024)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="torch threads for the model (default: torch's; on a 2-core CPU: 2; on a GPU: 1-2)",
    )
    parser.add_argument(
        "--graceful-timeout",
        type=float,
        default=30.0,
        help="seconds a shutdown waits for requests in flight (default: 30)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=("critical", "error", "warning", "info", "debug")
    )
    add_device_map_arguments(parser)


def run_serve(args: argparse.Namespace) -> int:
    """Serve trained runs over HTTP: one frozen backbone, mixed-task batches (needs the `serve` extra).

    One process loads the backbone once and each run folder's prompts, attention and heads onto it; requests
    of any tasks are batched together and predicted in one worker thread, as `attempt predict` would.

        curl -s localhost:8000/v1/predict -H 'content-type: application/json' \\
             -d '{"task": "rte", "inputs": [{"sentence1": "A man sleeps.", "sentence2": "A man is awake."}]}'

    Also GET /v1/tasks, /health and /metrics (Prometheus). Stop with Ctrl-C: the requests in flight are
    answered first. One process on purpose (no --workers): each worker process would hold its own backbone.
    """
    try:
        from attempt.serve import build_app, load_runs, make_server
    except ImportError as error:
        raise ImportError(
            f"attempt serve needs FastAPI, uvicorn and prometheus-client ({error}). "
            "Install them: pip install 'attempt-tuning[serve]'."
        ) from error
    import torch

    if (
        min(args.max_batch_size, args.max_inputs, args.max_queue) < 1
        or min(args.max_wait_ms, args.max_padding) < 0
    ):
        raise UsageError(
            "--max-batch-size, --max-inputs and --max-queue must be at least 1, --max-wait-ms and --max-padding at least 0."
        )
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    served = load_runs(args.run_dirs, backbone=args.backbone, method=args.method, **device_map_options(args))
    app = build_app(
        served, max_batch_size=args.max_batch_size, max_wait_ms=args.max_wait_ms, max_inputs=args.max_inputs,
        max_queue=args.max_queue, max_padding=args.max_padding,
    )  # fmt: skip
    for run in served.runs:
        print(f"{run.run_dir}: {', '.join(run.tasks)} ({run.config.mode})", flush=True)
    server = make_server(
        app, args.host, args.port, graceful_timeout=args.graceful_timeout, log_level=args.log_level
    )
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl-C once it has drained and shut down
        server.run()
    print("attempt serve: stopped.", flush=True)
    return 0
