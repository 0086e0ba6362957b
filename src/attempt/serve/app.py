"""The HTTP API, on FastAPI (Starlette underneath) run by uvicorn.

Why these: FastAPI validates the JSON body against a pydantic model (a missing "task" is a 422 naming the
field, not a KeyError), runs on the asyncio event loop that the batcher needs, and its lifespan hook starts and
drains the batcher; uvicorn is the ASGI server it is made for, and on SIGINT/SIGTERM stops accepting
connections, lets the requests in flight finish, then runs that lifespan shutdown.

    POST /v1/predict   {"task": "rte", "inputs": [{...}, ...], "return_attention": false, "run": null}
    GET  /v1/tasks     the tasks, their fields and label words, the backbone, the source prompts
    GET  /health       {"status": "ok", ...}
    GET  /metrics      Prometheus text (prometheus_client)
    GET  /v1/models, POST /v1/completions   OpenAI-compatible (`attempt.serve.openai_api`)

Every error answer is ``{"error": "<what is wrong and what to do>"}`` with a 4xx (the request) or 5xx status
(the OpenAI routes answer in OpenAI's error shape).
"""

from __future__ import annotations

import functools
import logging
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from attempt.evaluation.inference import path_of
from attempt.serve.batcher import Batcher, Closing, QueueFull
from attempt.serve.openai_api import OpenAIError, add_openai_routes
from attempt.serve.predict import predict_batch
from attempt.serve.runs import ServedRuns
from attempt.serve.telemetry import CONTENT_TYPE, Telemetry
from attempt.serve.validation import RequestError, Validator

log = logging.getLogger("attempt.serve")
# the OpenAI-compatible routes (`attempt.serve.openai_api`): their errors keep OpenAI's shape
OPENAI_PATHS = ("/v1/models", "/v1/completions")
SEND = 'Send {"task": "rte", "inputs": [{...}]}.'
TOO_DEEP = "lists or objects nested too deep to parse"


class PredictRequest(BaseModel):
    """The body of POST /v1/predict (unknown keys are refused, so a misspelt option is not silently ignored)."""

    model_config = ConfigDict(extra="forbid")
    task: str = Field(description="a served task, e.g. 'rte' (GET /v1/tasks)")
    inputs: list[Any] = Field(description="one object per input holding the task's fields")
    return_attention: bool = Field(False, description="add each input's attention weights over the prompts")
    run: str | None = Field(None, description="the run folder's name, when several served runs have the task")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _task_label(served: ServedRuns, name: str) -> str:
    """The metrics label of a requested task: its canonical name when served, else "unknown"."""
    from attempt.tasks import get_task

    return get_task(name).name if served.runs_of(name) else "unknown"


def build_app(
    served: ServedRuns,
    *,
    max_batch_size: int = 32,
    max_wait_ms: float = 5.0,
    max_inputs: int = 64,
    max_queue: int = 1024,
    max_padding: float = 0.25,
) -> FastAPI:
    """The FastAPI app answering for `served` (see `attempt.serve.runs.load_runs`); run it with uvicorn.

    The options are `attempt serve`'s (see its --help); `max_padding` is `attempt.serve.predict.length_groups`'.
    """
    telemetry = Telemetry(in_flight=lambda: batcher.pending)
    batcher = Batcher(
        functools.partial(predict_batch, max_padding=max_padding), max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms, max_queue=max_queue, on_batch=telemetry.batch,
    )  # fmt: skip
    validator = Validator(served, max_inputs)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await batcher.start()
        yield
        await batcher.stop()  # uvicorn has let the requests in flight finish; predict anything still queued

    app = FastAPI(
        title="attempt serve",
        summary="ATTEMPT soft-prompt models over one frozen backbone",
        lifespan=lifespan,
    )
    app.state.served, app.state.batcher, app.state.telemetry = served, batcher, telemetry
    _add_predict(app, served, validator, batcher, telemetry)
    add_openai_routes(app, served, validator, batcher, telemetry)  # /v1/models, /v1/completions

    @app.get("/v1/tasks")
    async def tasks() -> dict[str, Any]:
        return {"backbone": served.backbone_name, "family": served.family, "tasks": describe_tasks(served)}

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "tasks": served.tasks, "inputs_in_flight": batcher.pending}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(telemetry.text(), media_type=CONTENT_TYPE)

    return app


def _add_predict(
    app: FastAPI, served: ServedRuns, validator: Validator, batcher: Batcher, telemetry: Telemetry
) -> None:
    """POST /v1/predict, the one-line 422 for a body FastAPI cannot read into a `PredictRequest`, and FastAPI's
    own errors (an unparsable body, a path or method not served) in this API's shape."""

    @app.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, error: RequestValidationError) -> JSONResponse:
        shown = lambda part: str(part) if str(part).isprintable() else repr(part)  # noqa: E731 - a key of yours
        problems = "; ".join(f"{'.'.join(map(shown, e['loc']))}: {e['msg']}" for e in error.errors())
        telemetry.request("invalid", 422, 0.0)
        return _error(422, f"Invalid request body ({problems}). {SEND}")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        status, message = _http_error(request, error)
        telemetry.request("invalid", status, 0.0)
        if request.url.path.startswith(OPENAI_PATHS):
            return OpenAIError(status, message).response()
        return JSONResponse({"error": message}, status_code=status, headers=error.headers)

    @app.exception_handler(RecursionError)
    async def nested_too_deep(request: Request, error: RecursionError) -> JSONResponse:
        # a route that parses its body itself (the OpenAI routes) meets JSON nested thousands deep as this error
        openai = request.url.path.startswith(OPENAI_PATHS)
        telemetry.request("invalid", 400 if openai else 422, 0.0)
        if openai:  # their status for a body that is not a completion request
            return OpenAIError(
                400, f"The body has {TOO_DEEP}: send a completion request as a JSON object."
            ).response()
        return _error(422, f"Invalid request body ({TOO_DEEP}). {SEND}")

    @app.post("/v1/predict")
    async def predict(body: PredictRequest) -> Response:
        started = time.perf_counter()
        label = _task_label(served, body.task)
        status, count = 200, 0
        try:
            items = validator.items(body.task, body.inputs, body.return_attention, body.run)
            results = await batcher.submit(items)
            count = len(items)
            response: Response = JSONResponse({"task": label, "predictions": results})
        except RequestError as error:
            status, response = error.status, _error(error.status, error.message)
        except (QueueFull, Closing) as error:
            status, response = 503, _error(503, str(error))
        except Exception as error:  # an input broke the model: this request fails, the batch's others do not
            log.exception("prediction failed")
            status, response = 500, _error(500, f"Prediction failed ({type(error).__name__}: {error}).")
        telemetry.request(label, status, time.perf_counter() - started, count)
        return response


def _http_error(request: Request, error: HTTPException) -> tuple[int, str]:
    """The status and message of an error FastAPI raised itself (its answer would be ``{"detail": ...}``): a body
    its JSON parser failed on (FastAPI's 400, with the parser's error as the cause) is the 422 of any unreadable
    body; a route or method not served keeps its status and says where the routes are listed."""
    cause = error.__cause__
    if error.status_code == 400 and isinstance(cause, UnicodeDecodeError):
        return 422, f"Invalid request body (not UTF-8: {cause.reason} at byte {cause.start}). {SEND}"
    if error.status_code == 400 and isinstance(cause, RecursionError):
        return 422, f"Invalid request body ({TOO_DEEP}). {SEND}"
    if error.status_code == 400 and cause is not None:
        return 422, f"Invalid request body ({type(cause).__name__}: {cause}). {SEND}"
    return error.status_code, (
        f"{error.detail}: {request.method} {request.url.path}. GET /openapi.json lists the routes and their methods."
    )


def describe_tasks(served: ServedRuns) -> list[dict[str, Any]]:
    """What GET /v1/tasks lists per task: its run folder, fields, label words, how it is answered, limits."""
    from attempt.tasks import get_task

    described = []
    for run in served.runs:
        sources = [info["name"] for info in run.model.source_info]
        for name in run.tasks:
            task = get_task(name)
            how = path_of(run.model, task, run.method)  # "head", "rank" or "generate", as predictions go
            described.append({
                "task": task.name, "run": run.name, "run_dir": str(run.run_dir), "mode": run.config.mode,
                "kind": task.kind, "fields": list(task.fields), "label_words": list(task.label_words or []),
                "answered_by": how, "max_input_tokens": run.config.max_source_length, "source_prompts": sources,
            })  # fmt: skip
    return described
