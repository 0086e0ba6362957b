"""`attempt serve`: many tasks over one frozen backbone, answered over HTTP with mixed-task batches.

One frozen backbone serves every task: each request names its task and each input gets that task's prompt,
so inputs of different tasks share one forward pass. The modules, in the order a request meets them:

- `runs`: load the backbone once and each run folder's trained mixture onto it (`load_runs`);
- `app`: the FastAPI routes (`build_app`); `validation`: 4xx for bad requests before anything is queued;
- `batcher`: the queue that groups inputs of any tasks into batches for one worker thread;
- `predict`: one batch through the evaluation code paths (head, rank classification, generation);
- `telemetry`: the Prometheus metrics; `server`: uvicorn.

Needs the ``serve`` extra: pip install 'attempt-tuning[serve]'.
"""

from __future__ import annotations

from attempt.serve.app import build_app
from attempt.serve.runs import ServedRun, ServedRuns, load_runs
from attempt.serve.server import bound_port, make_server

__all__ = ["ServedRun", "ServedRuns", "bound_port", "build_app", "load_runs", "make_server"]
