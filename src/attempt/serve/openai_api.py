"""OpenAI-compatible routes beside /v1/predict, so OpenAI clients (the `openai` package, LangChain, ...) can call
the served tasks.

    GET  /v1/models              one model per served run and task, named "<run>/<task>" (e.g. "attempt-cb/cb")
    GET  /v1/models/{model}      one of them
    POST /v1/completions         {"model": "attempt-cb/cb", "prompt": "..." or ["...", ...], "logprobs": 3}

``model`` names a run and task (or just the task, when one served run has it). ``prompt`` is one input (a list:
one choice each): for a task with one text field, the text itself; for a task of several fields (a pair task
such as cb's premise and hypothesis), a JSON object holding them, ``'{"premise": "...", "hypothesis": "..."}'``
(a one-field task takes that form too). Each input goes through the same validation, batcher and inference
path as /v1/predict (`attempt.serve.predict` → `attempt.evaluation.inference`), so the answers are its answers:

- classification: ``text`` is the label word, and ``logprobs`` (always sent) holds it as one token with its
  score, the label word's log-likelihood (rank classification) or log-softmax (an encoder's head), and, in
  ``top_logprobs``, every label word's score, best first (the ``logprobs`` parameter caps how many);
- regression and generation: ``text`` is the value or the generated text; ``logprobs`` is null.

``usage`` counts the input's tokens as the model reads them (without the soft prompt) and the answer's tokens.
Decoding is greedy and rank classification exact, so ``temperature``, ``top_p``, ``seed`` and the like change
nothing and are accepted and ignored, as is ``max_tokens`` (a run generates at most its max_target_length
tokens); ``stream``, ``echo`` and ``n`` or ``best_of`` above 1 are refused. Errors have OpenAI's shape,
``{"error": {"message", "type", "param", "code"}}``: 404 ``model_not_found`` for a model not served, 400 for
a body that is not a completion request, the /v1/predict statuses (413, 422, 503) otherwise.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from attempt.serve.batcher import Batcher, Closing, QueueFull
from attempt.serve.runs import ServedRun, ServedRuns
from attempt.serve.telemetry import Telemetry
from attempt.serve.validation import RequestError, Validator
from attempt.tasks import Task, get_task

log = logging.getLogger("attempt.serve")
OWNER = "attempt"  # owned_by of every model
REFUSED = {
    "stream": False,
    "echo": False,
    "n": 1,
    "best_of": 1,
}  # options this server cannot honour, and the value it can


class CompletionRequest(BaseModel):
    """The body of POST /v1/completions; OpenAI's other options are accepted and ignored (see the module)."""

    model_config = ConfigDict(extra="allow")
    model: str = Field(description='"<run>/<task>" (GET /v1/models), or a task served by one run')
    prompt: str | list[str] = Field(
        description="the input text, or a JSON object of the task's fields; a list: several"
    )
    logprobs: int | None = Field(
        None, ge=0, description="how many label words top_logprobs lists (default: all)"
    )
    stream: bool | None = None
    echo: bool | None = None
    n: int | None = None
    best_of: int | None = None


class OpenAIError(Exception):
    """An answer in OpenAI's error shape."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def response(self) -> JSONResponse:
        kind = "server_error" if self.status >= 500 else "invalid_request_error"
        body = {"message": self.message, "type": kind, "param": self.param, "code": self.code}
        return JSONResponse({"error": body}, status_code=self.status)


def model_ids(served: ServedRuns) -> list[tuple[str, ServedRun, str]]:
    """(model id, run, task) of every served run and task, in the order of the run folders."""
    return [(f"{run.name}/{task}", run, task) for run in served.runs for task in run.tasks]


def resolve_model(served: ServedRuns, model: str) -> tuple[ServedRun, Task]:
    """The run and task a request's ``model`` names: "<run>/<task>", or a task that one served run has.

    Raises:
        OpenAIError: 404 model_not_found (listing the served ids), or 400 for a task several runs serve.
    """
    for model_id, run, task in model_ids(served):
        if model == model_id:
            return run, get_task(task)
    runs = served.runs_of(model) if "/" not in model else []
    if len(runs) == 1:
        return runs[0], get_task(model)
    ids = [model_id for model_id, _, _ in model_ids(served)]
    if runs:
        choices = ", ".join(i for i in ids if i.endswith(f"/{get_task(model).name}"))
        raise OpenAIError(
            400, f"Task {model!r} is served by several runs: name one, as one of {choices}.", "model"
        )
    raise OpenAIError(
        404,
        f"The model {model!r} does not exist here. Served models: {', '.join(ids)}.",
        "model",
        "model_not_found",
    )


def input_row(task: Task, text: str) -> dict[str, Any]:
    """The input fields `text` gives: a JSON object of the task's fields, or, for a task of one field, the text.

    Raises:
        OpenAIError: 400 for a task of several fields whose prompt is not such an object.
    """
    if text.lstrip().startswith("{"):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, dict) and set(task.fields) <= set(value):
            return value
    if len(task.fields) == 1:
        return {task.fields[0]: text}
    example = json.dumps({name: "..." for name in task.fields})
    raise OpenAIError(
        400,
        f"{task.name} reads {len(task.fields)} fields ({', '.join(task.fields)}): send the prompt as a JSON object "
        f"of them, e.g. {example!r}.",
        "prompt",
    )


def _choice(index: int, text: str, result: dict[str, Any], top: int | None) -> dict[str, Any]:
    """One completion choice from one /v1/predict result: the label word and its log-probability, or the text."""
    scores = result.get("scores")
    answer = str(result["prediction"])
    logprobs = None
    if scores is not None:
        ranked = sorted(((w, s) for w, s in scores.items() if s is not None), key=lambda pair: -pair[1])
        logprobs = {"tokens": [answer], "token_logprobs": [scores[answer]], "text_offset": [len(text)],
                    "top_logprobs": [dict(ranked[:top] if top is not None else ranked)]}  # fmt: skip
    return {"index": index, "text": answer, "logprobs": logprobs, "finish_reason": "stop"}


def _refused(body: CompletionRequest) -> None:
    for option, allowed in REFUSED.items():
        value = getattr(body, option)
        if value is not None and value != allowed:
            raise OpenAIError(
                400, f"{option}={value!r} is not supported here; send {option}={allowed!r}.", option
            )


def _parsed(raw: Any) -> CompletionRequest:
    try:
        return CompletionRequest.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        param = str(first["loc"][0]) if first["loc"] else None  # the field; a union adds the type it tried
        raise OpenAIError(400, f"Invalid completion request: {param}: {first['msg']}.", param) from None


def add_openai_routes(
    app: FastAPI, served: ServedRuns, validator: Validator, batcher: Batcher, telemetry: Telemetry
) -> None:
    """Add GET /v1/models, GET /v1/models/{model} and POST /v1/completions to `app` (`build_app` calls this)."""

    def describe(model_id: str, run: ServedRun) -> dict[str, Any]:
        created = int(run.run_dir.stat().st_mtime) if run.run_dir.exists() else 0
        return {"id": model_id, "object": "model", "created": created, "owned_by": OWNER}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [describe(i, run) for i, run, _ in model_ids(served)]}

    @app.get("/v1/models/{model:path}")
    async def model(model: str) -> JSONResponse:
        for model_id, run, _ in model_ids(served):
            if model_id == model:
                return JSONResponse(describe(model_id, run))
        return OpenAIError(
            404, f"The model {model!r} does not exist here.", "model", "model_not_found"
        ).response()

    @app.post("/v1/completions")
    async def completions(request: Request) -> JSONResponse:
        started, label, count = time.perf_counter(), "unknown", 0
        try:
            body = _parsed(await _json(request))
            _refused(body)
            run, task = resolve_model(served, body.model)
            label = task.name
            response = await _complete(body, run, task, validator, batcher)
            count, status = len(response["choices"]), 200
            answer = JSONResponse(response)
        except OpenAIError as error:
            status, answer = error.status, error.response()
        telemetry.request(label, status, time.perf_counter() - started, count)
        return answer


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise OpenAIError(400, "The body is not JSON: send a completion request as a JSON object.") from None


async def _complete(
    body: CompletionRequest, run: ServedRun, task: Task, validator: Validator, batcher: Batcher
) -> dict[str, Any]:
    """The completion of every prompt in `body`, through the batcher as /v1/predict predicts."""
    prompts: Sequence[str] = [body.prompt] if isinstance(body.prompt, str) else body.prompt
    if not prompts:
        raise OpenAIError(400, '"prompt" is an empty list: send at least one input.', "prompt")
    rows = [input_row(task, text) for text in prompts]
    try:
        items = validator.items(task.name, rows, False, run.name)
        results = await batcher.submit(items)
    except RequestError as error:
        raise OpenAIError(error.status, error.message, "prompt") from None
    except (QueueFull, Closing) as error:
        raise OpenAIError(503, str(error)) from None
    except Exception as error:  # an input broke the model: this request fails, the batch's others do not
        log.exception("completion failed")
        raise OpenAIError(500, f"Prediction failed ({type(error).__name__}: {error}).") from None
    choices = [
        _choice(i, text, result, body.logprobs)
        for i, (text, result) in enumerate(zip(prompts, results, strict=True))
    ]
    answered = sum(_tokens(validator, choice["text"]) for choice in choices)
    read = sum(item.length for item in items)
    return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
            "model": f"{run.name}/{task.name}", "choices": choices,
            "usage": {"prompt_tokens": read, "completion_tokens": answered, "total_tokens": read + answered}}  # fmt: skip


def _tokens(validator: Validator, text: str) -> int:
    """Tokens of an answer's text, as the model's tokenizer spells it (no special tokens)."""
    return len(validator.tokenizer(text, add_special_tokens=False)["input_ids"])


__all__ = ["CompletionRequest", "OpenAIError", "add_openai_routes", "input_row", "model_ids", "resolve_model"]
