"""`attempt serve` fuzzed from its own OpenAPI schema (schemathesis) against a live server on 127.0.0.1.

Schemathesis reads the server's /openapi.json and generates requests for every operation it describes, valid
ones and invalid ones (its positive and negative modes). Half the bodies of POST /v1/predict then name a served
task, and half of those hold inputs with the task's fields set to any JSON value (text, a number, null, a list,
a text too long), so that requests get past the 404 into the validation and the model. The property: no 5xx,
and every 4xx in the documented shape, ``{"error": "<one line>"}``, or OpenAI's ``{"error": {"message", "type",
"param", "code"}}`` on the OpenAI-compatible routes.

Bounded and stopping by itself: a fixed number of examples, the same ones every run (derandomized), each
request with a timeout; FUZZ_EXAMPLES=1000 hunts longer, at random. The server answers a tiny random T5 with an
ATTEMPT model built in memory: rte (two fields, rank classification), sst2 (one field) and stsb (generation).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from attempt.config import AttemptConfig  # noqa: E402
from attempt.data.collate import Collator  # noqa: E402
from attempt.modeling import AttemptModel  # noqa: E402
from attempt.prompts.library import SourcePrompt  # noqa: E402
from attempt.serve import ServedRun, bound_port, build_app, make_server  # noqa: E402
from attempt.serve.app import OPENAI_PATHS  # noqa: E402
from attempt.serve.runs import ServedRuns  # noqa: E402
from attempt.tasks import get_task  # noqa: E402
from attempt.testing import WORDS, build_backbone, build_tokenizer  # noqa: E402

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", 300)),
    deadline=None,  # an HTTP round trip; a hang is caught by the request's timeout instead
    derandomize=not os.environ.get("FUZZ_EXAMPLES"),
    suppress_health_check=list(HealthCheck),
)
TASKS = ("rte", "sst2", "stsb")
MAX_SOURCE_LENGTH = 32
TIMEOUT_S = 30  # a request unanswered this long is a hang

# what an input field may hold: text (words the tiny model knows, any text, too long for the run), or not text
texts = st.one_of(
    st.lists(st.sampled_from([w for w in WORDS if w.isalpha()]), max_size=8).map(" ".join),
    st.text(max_size=40),
    st.sampled_from(["", " ", "\x00", "word " * 40, "é" * 2000, "{text}", "\ud800", "a\nb"]),
)  # fmt: skip
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


def task_inputs(task: str) -> st.SearchStrategy:
    """1-3 inputs of `task`: each of its fields text most of the time, else any JSON value."""
    fields = {name: st.one_of(texts, texts, json_values) for name in get_task(task).fields}
    return st.lists(st.fixed_dictionaries(fields), min_size=1, max_size=3)


def tiny_served() -> ServedRuns:
    """What `attempt.serve.load_runs` makes of a run folder, for a tiny ATTEMPT model built in memory."""
    torch.manual_seed(5)
    sources = [SourcePrompt(name, torch.randn(4, 32), task=name) for name in ("mnli", "qnli")]
    config = AttemptConfig(tasks=TASKS, prompt_length=4, bottleneck_size=8)
    model = AttemptModel.from_backbone(
        build_backbone("seq2seq", seed=9), source_prompts=sources, config=config
    )
    tokenizer = build_tokenizer("seq2seq")
    collator = Collator(tokenizer, "seq2seq", model.tasks, MAX_SOURCE_LENGTH, 4, cache=False)
    recorded = SimpleNamespace(max_source_length=MAX_SOURCE_LENGTH, max_target_length=4, mode="attempt")
    run = ServedRun("tiny", Path("tiny"), model.eval(), recorded, collator, "rank")
    return ServedRuns([run], tokenizer, "tiny-t5", "seq2seq")


@pytest.fixture(scope="module")
def server():
    """The live server on a free loopback port, and the strategy of requests its OpenAPI schema gives."""
    server = make_server(build_app(tiny_served(), max_wait_ms=0), "127.0.0.1", 0, log_level="critical")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    url = f"http://127.0.0.1:{bound_port(server)}"
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    modes = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
    try:
        yield url, st.one_of(*(schema.as_strategy(generation_mode=mode) for mode in modes))
    finally:
        server.should_exit = True
        thread.join(30)


def aimed(case, data) -> None:
    """Most predict bodies name a served task, and most of those hold inputs of its fields."""
    if case.method != "POST" or case.path != "/v1/predict" or not isinstance(case.body, dict):
        return
    aim = data.draw(
        st.sampled_from(["as generated", "served task", "task inputs", "task inputs"]), label="aim"
    )
    if aim != "as generated":
        case.body["task"] = data.draw(st.sampled_from(TASKS), label="task")
    if aim == "task inputs":
        case.body["inputs"] = data.draw(task_inputs(case.body["task"]), label="inputs")


def completion(data) -> dict:
    """A body for POST /v1/completions (its schema describes none: the route reads the JSON itself)."""
    task = data.draw(st.sampled_from(TASKS), label="task")
    prompt = st.one_of(texts, task_inputs(task).map(lambda rows: json.dumps(rows[0])), json_values)
    body = {"model": data.draw(st.sampled_from([f"tiny/{task}", task, "tiny/nope"]), label="model"),
            "prompt": data.draw(st.one_of(prompt, st.lists(prompt, max_size=3)), label="prompt")}  # fmt: skip
    options = {"logprobs": json_values | st.integers(-1, 4), "n": st.integers(0, 2), "stream": json_values}
    return {**body, **data.draw(st.fixed_dictionaries({}, optional=options), label="options")}


def shape_problem(path: str, body) -> str | None:
    """What is wrong with a 4xx answer's body, or None when it has the documented shape."""
    if not isinstance(body, dict) or list(body) != ["error"]:
        return "not {'error': ...}"
    error = body["error"]
    if path.startswith(OPENAI_PATHS):  # OpenAI's error object
        if not isinstance(error, dict) or sorted(error) != ["code", "message", "param", "type"]:
            return "not OpenAI's {'error': {'message', 'type', 'param', 'code'}}"
        error = error["message"]
    if not isinstance(error, str) or not error or "\n" in error:
        return "the error is not one line of text"
    return None


@FUZZ
@given(data=st.data())
def test_any_request_the_schema_allows_or_forbids_gets_no_5xx_and_documented_4xx(server, data):
    url, requests = server
    case = data.draw(requests, label="request")
    if case.path == "/v1/completions" and data.draw(st.booleans(), label="completion body"):
        body = completion(data)
        content = json.dumps(body).encode()  # \u-escaped: a lone surrogate is valid JSON, not valid UTF-8
        headers = {"content-type": "application/json"}
        response = httpx.post(f"{url}{case.path}", content=content, headers=headers, timeout=TIMEOUT_S)
    else:
        aimed(case, data)
        body, response = case.body, case.call(base_url=url, timeout=TIMEOUT_S)
    event(f"{case.method} {case.path} -> {response.status_code}")  # pytest --hypothesis-show-statistics
    sent = f"{case.method} {case.path} {case.path_parameters or ''} {case.query or ''} body={body!r:.300}"
    assert response.status_code < 500, f"{response.status_code} for {sent}: {response.text[:300]}"
    if response.status_code >= 400:
        problem = shape_problem(case.path, response.json())
        assert problem is None, f"{response.status_code} for {sent}: {problem}: {response.text[:300]}"
