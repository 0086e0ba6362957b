"""The server's Prometheus metrics, kept and written by prometheus_client (the reference client library).

Each app gets its own CollectorRegistry rather than the process-wide default one, so two servers in one
process (the tests, the benchmark) do not collide on metric names. A request's task label is the served task's
name, or "unknown" for names no run answers: client text never becomes a label (unbounded series).
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE  # noqa: F401  (re-exported for the app)
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Telemetry:
    """Request counts, inputs, latencies, batch sizes and the inputs in flight of one server."""

    def __init__(self, in_flight: Callable[[], float]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "attempt_serve_requests",
            "Prediction requests by task and HTTP status.",
            ["task", "status"],
            registry=self.registry,
        )
        self.inputs = Counter(
            "attempt_serve_inputs", "Inputs predicted, by task.", ["task"], registry=self.registry
        )
        self.latency = Histogram(
            "attempt_serve_request_seconds",
            "Time from receiving a prediction request to answering it.",
            ["task"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "attempt_serve_batch_size",
            "Inputs per model batch (any tasks mixed).",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "attempt_serve_batch_seconds",
            "Time the worker thread spends predicting one batch.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        waiting = Gauge(
            "attempt_serve_inputs_in_flight",
            "Inputs accepted and not answered yet (queued or in the model).",
            registry=self.registry,
        )
        waiting.set_function(in_flight)

    def request(self, task: str, status: int, seconds: float, inputs: int = 0) -> None:
        self.requests.labels(task=task, status=str(status)).inc()
        self.latency.labels(task=task).observe(seconds)
        if inputs:
            self.inputs.labels(task=task).inc(inputs)

    def batch(self, size: int, seconds: float) -> None:
        """Called by the batcher after each batch."""
        self.batch_size.observe(size)
        self.batch_seconds.observe(seconds)

    def text(self) -> bytes:
        """Everything, in the Prometheus text exposition format."""
        return generate_latest(self.registry)
