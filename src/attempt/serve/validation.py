"""Checking a prediction request before any of it is queued, so a bad input never reaches a batch.

Each problem is a `RequestError` carrying the HTTP status and a message that names the input, what is wrong
and what to send instead: 404 for a task (or run) not served, 422 for a missing or non-text field or a task
several runs answer without "run" naming one, 413 for
too many inputs or a text longer than the run reads (it would be cut, silently changing the prediction).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from attempt.serve.predict import Item
from attempt.serve.runs import ServedRun, ServedRuns
from attempt.tasks import Task, get_task

# a token is rarely longer than this many characters: texts beyond max_source_length × this are refused
# before tokenizing, so a huge body cannot hold the event loop in the tokenizer
CHARS_PER_TOKEN_BOUND = 32


class RequestError(Exception):
    """A request the server will not predict: `status` (4xx) and a message saying how to fix it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Validator:
    """Turns a request's inputs into queued `Item`s, or raises `RequestError`.

    It tokenizes with its own copy of the tokenizer: the worker thread's collator sets truncation on the shared
    one, and a Rust tokenizer used from two threads while its settings change raises "Already borrowed".
    """

    def __init__(self, served: ServedRuns, max_inputs: int) -> None:
        self.served = served
        self.max_inputs = max_inputs
        self.tokenizer = copy.deepcopy(served.tokenizer)

    def items(
        self, task_name: str, inputs: Sequence[Any], attention: bool = False, run_name: str | None = None
    ) -> list[Item]:
        run = self.run(task_name, run_name)
        task = get_task(task_name)
        if not inputs:
            raise RequestError(422, f'"inputs" is empty: send at least one {task.name} input.')
        if len(inputs) > self.max_inputs:
            raise RequestError(
                413,
                f"{len(inputs)} inputs in one request; this server takes at most {self.max_inputs} "
                "(--max-inputs). Split them over several requests.",
            )
        return [self._item(run, task, row, position, attention) for position, row in enumerate(inputs)]

    def run(self, task_name: str, run_name: str | None = None) -> ServedRun:
        """The run that answers `task_name`: the one named `run_name`, or the only one serving the task."""
        runs = self.served.runs_of(task_name)
        if not runs:
            raise RequestError(
                404,
                f"Task {task_name!r} is not served here. Served tasks: {', '.join(self.served.tasks)} "
                "(GET /v1/tasks lists their fields).",
            )
        names = ", ".join(run.name for run in runs)
        if run_name is not None:
            named = [run for run in runs if run.name == run_name]
            if not named:
                raise RequestError(
                    404, f"No served run named {run_name!r} answers {task_name!r}; these do: {names}."
                )
            return named[0]
        if len(runs) > 1:
            raise RequestError(
                422, f'Task {task_name!r} is served by several runs ({names}): add "run": one of them.'
            )
        return runs[0]

    def _item(self, run: ServedRun, task: Task, row: Any, position: int, attention: bool) -> Item:
        where = f"inputs[{position}]"
        if not isinstance(row, Mapping):
            raise RequestError(
                422, f"{where} is not a JSON object; send {{{', '.join(repr(f) for f in task.fields)}: ...}}."
            )
        missing = [name for name in task.fields if row.get(name) is None]
        if missing:
            raise RequestError(
                422,
                f"{where} lacks field(s) {', '.join(missing)}; {task.name} needs {', '.join(task.fields)}.",
            )
        not_text = [name for name in task.fields if isinstance(row[name], (dict, list, bool))]
        if not_text:
            raise RequestError(422, f"{where}: field(s) {', '.join(not_text)} must be text (a JSON string).")
        limit = run.config.max_source_length
        if sum(len(str(row[name])) for name in task.fields) > limit * CHARS_PER_TOKEN_BOUND:
            raise RequestError(
                413, f"{where} is far longer than the {limit} tokens {task.name} reads; shorten it."
            )
        try:
            length = self._length(run, task, row)
        except (KeyError, ValueError, TypeError) as error:  # a task's renderer needs more than its fields
            raise RequestError(422, f"{where} cannot be read as a {task.name} input: {error}.") from error
        if length > limit:
            raise RequestError(
                413,
                f"{where} is {length} tokens; the {task.name} run reads at most {limit} (its "
                "max_source_length), so the rest would be cut. Shorten the text.",
            )
        return Item(run, task, dict(row), attention=attention, length=length)

    def _length(self, run: ServedRun, task: Task, row: Mapping[str, Any]) -> int:
        """Source tokens as the collator would count them, before it truncates."""
        if run.model.family == "encoder":
            return len(self.tokenizer(*task.text_fields(row))["input_ids"])
        return len(self.tokenizer(task.source_text(row))["input_ids"])
