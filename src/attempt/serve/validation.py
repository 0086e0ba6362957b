"""Checking a prediction request before any of it is queued, so a bad input never reaches a batch.

Each problem is a `RequestError` carrying the HTTP status and a message that names the input, what is wrong
and what to send instead: 404 for a task (or run) not served, 422 for a missing or non-text field or a task
several runs answer without "run" naming one, 413 for
too many inputs or a text longer than the run reads (it would be cut, silently changing the prediction).
Each input is checked by `attempt.evaluation.evaluate.check_input`, the check `attempt predict` makes: the
same input is refused by both, with the same message.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from attempt.evaluation.evaluate import InputTooLong, check_input
from attempt.serve.predict import Item
from attempt.serve.runs import ServedRun, ServedRuns
from attempt.tasks import Task, get_task
from attempt.utils.textfiles import DataError


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
        try:  # what `attempt predict` checks, with its message: fields present and text, not too long
            length = check_input(
                row,
                task,
                where,
                run.config.max_source_length,
                tokenizer=self.tokenizer,
                family=run.model.family,
            )
        except InputTooLong as error:
            raise RequestError(413, str(error)) from None
        except DataError as error:
            raise RequestError(422, str(error)) from None
        except (KeyError, ValueError, TypeError) as error:  # a task's renderer needs more than its fields
            raise RequestError(422, f"{where} cannot be read as a {task.name} input: {error}.") from error
        return Item(run, task, dict(row), attention=attention, length=length)
