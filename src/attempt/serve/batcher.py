"""Dynamic batching: queued inputs of any tasks are grouped into batches that one worker thread predicts.

The HTTP handlers put each input of a request on an asyncio queue with a future and await the futures. One
coroutine takes the oldest input, then keeps taking inputs until the batch holds ``max_batch_size`` of them or
``max_wait_ms`` have passed since the first, whatever their tasks; it sorts the batch longest first (as
evaluation does) and hands it to a single worker thread. The event loop therefore never runs the model: it
keeps accepting, validating and queueing requests while a batch is being predicted, and those requests form
the next batch. One thread, because the model is one set of weights; the parallelism is torch's own, inside
each forward (``torch.set_num_threads`` on a CPU, the GPU's kernels on a GPU).

Stopping (`stop`) lets every input already queued be predicted before the loop ends, so a server that shuts
down answers the requests it accepted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from attempt.serve.predict import Item

Outcome = dict[str, Any] | BaseException
_STOP = object()  # put on the queue after the last input: the loop predicts what precedes it, then ends


class QueueFull(RuntimeError):
    """The queue already holds max_queue inputs: the server is overloaded (the client should retry later)."""


class Closing(RuntimeError):
    """The server is shutting down and takes no new inputs."""


@dataclasses.dataclass
class _Pending:
    item: Item
    future: asyncio.Future


class Batcher:
    """Groups queued inputs into batches and predicts them in one worker thread.

    Args:
        predict_batch: called in the worker thread with a batch of items; returns one outcome per item (its
            result dict, or the exception that item alone raised).
        max_batch_size: inputs per batch at most (1 = one input at a time, no batching).
        max_wait_ms: how long the first input of a batch waits for others to join it.
        max_queue: inputs that may be waiting for their answer at once; beyond that `submit` raises `QueueFull`.
        on_batch: called after each batch with (batch size, seconds in the model) for the metrics.
    """

    def __init__(
        self,
        predict_batch: Callable[[list[Item]], Sequence[Outcome]],
        *,
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        max_queue: int = 1024,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        if max_batch_size < 1 or max_wait_ms < 0 or max_queue < 1:
            raise ValueError("max_batch_size and max_queue must be at least 1, max_wait_ms at least 0.")
        self._predict_batch = predict_batch
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self.max_queue = max_queue
        self._on_batch = on_batch
        self._queue: asyncio.Queue | None = None
        self._loop_task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False
        self._pending = 0

    @property
    def pending(self) -> int:
        """Inputs accepted and not answered yet: queued, in the batch being formed, or being predicted."""
        return self._pending

    async def start(self) -> None:
        """Start the batching loop and the worker thread (call from the running event loop)."""
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="attempt-model")
        self._loop_task = asyncio.create_task(self._run())

    async def submit(self, items: Sequence[Item]) -> list[dict[str, Any]]:
        """Queue `items` and wait for their results (in order); an item's own exception is raised here."""
        if self._queue is None or self._closing:
            raise Closing("The server is shutting down; send the request to another instance or retry later.")
        if self._pending + len(items) > self.max_queue:
            raise QueueFull(
                f"{self._pending} inputs are already waiting (max_queue={self.max_queue}); retry later."
            )
        loop = asyncio.get_running_loop()
        pending = [_Pending(item, loop.create_future()) for item in items]
        for entry in pending:
            self._queue.put_nowait(entry)
        self._pending += len(items)
        try:
            return list(await asyncio.gather(*(entry.future for entry in pending)))
        finally:
            self._pending -= len(items)

    async def stop(self) -> None:
        """Predict everything already queued, then end the loop and the worker thread."""
        if self._queue is None or self._loop_task is None:
            return
        self._closing = True
        self._queue.put_nowait(_STOP)
        await self._loop_task
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def _run(self) -> None:
        done = False
        while not done:
            batch, done = await self._next_batch()
            if batch:
                await self._predict(batch)

    async def _next_batch(self) -> tuple[list[_Pending], bool]:
        """The next batch, and whether the stop marker came (the loop ends after predicting it)."""
        assert self._queue is not None
        first = await self._queue.get()
        if first is _STOP:
            return [], True
        batch = [first]
        deadline = asyncio.get_running_loop().time() + self.max_wait
        while len(batch) < self.max_batch_size:
            try:
                entry = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    entry = await asyncio.wait_for(self._queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
            if entry is _STOP:
                return batch, True
            batch.append(entry)
        return batch, False

    async def _predict(self, batch: list[_Pending]) -> None:
        live = [
            entry for entry in batch if not entry.future.done()
        ]  # a client that left cancelled its futures
        if not live:
            return
        live.sort(key=lambda entry: -entry.item.length)
        started = time.perf_counter()
        try:
            outcomes = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._predict_batch, [entry.item for entry in live]
            )
        except Exception as error:  # predict_batch isolates inputs; this is a bug in it, not in an input
            outcomes = [error] * len(live)
        if self._on_batch is not None:
            self._on_batch(len(live), time.perf_counter() - started)
        for entry, outcome in zip(live, outcomes, strict=True):
            if entry.future.done():
                continue
            if isinstance(outcome, BaseException):
                entry.future.set_exception(outcome)
            else:
                entry.future.set_result(outcome)
