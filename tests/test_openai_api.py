"""`attempt serve`'s OpenAI-compatible routes, called with the official `openai` client on a live server on a
free loopback port: /v1/models and /v1/completions answer what /v1/predict and `attempt predict` answer."""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("fastapi")
openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")

from attempt.cli import main  # noqa: E402
from attempt.config import TrainConfig  # noqa: E402
from attempt.prompts.library import PromptLibrary, SourcePrompt  # noqa: E402
from attempt.serve import bound_port, build_app, load_runs, make_server  # noqa: E402
from attempt.tasks import get_task  # noqa: E402
from attempt.testing import WORDS, build_backbone, build_tokenizer  # noqa: E402
from attempt.training.loop import train  # noqa: E402

pytestmark = pytest.mark.data
VOCAB = [w for w in WORDS if w.isalpha()]
ERROR_KEYS = {"message", "type", "param", "code"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir) -> dict[str, Path]:
    """Two run folders over one tiny T5: ATTEMPT on cb (two fields) and sst2 (one), prompt tuning on stsb
    (regression: generated)."""
    root = tmp_path_factory.mktemp("openai")
    backbone = root / "tiny-seq2seq"
    build_backbone("seq2seq").save_pretrained(backbone)
    build_tokenizer("seq2seq").save_pretrained(backbone)
    library = PromptLibrary(root / "lib")
    for i, name in enumerate(("mnli", "qnli")):
        library.add(SourcePrompt(name, torch.randn(4, 32, generator=torch.Generator().manual_seed(i)) * 0.5))

    def trained(name: str, **fields) -> Path:
        config = TrainConfig(**{
            "mode": "attempt", "backbone": str(backbone), "library": str(library.root), "output_dir": str(root / name),
            "data_dir": str(data_dir), "attempt": {"prompt_length": 4, "bottleneck_size": 8}, "max_steps": 2,
            "batch_size": 4, "eval_batch_size": 8, "learning_rate": 0.3, "eval_every": 2, "train_limit": 16,
            "eval_limit": 8, "max_source_length": 32, "max_target_length": 8, "seed": 7, **fields,
        })  # fmt: skip
        train(config, progress=False)
        return Path(config.output_dir)

    return {"multi": trained("multi", tasks=("cb", "sst2")),
            "stsb": trained("stsb", mode="prompt_tuning", tasks=("stsb",))}  # fmt: skip


@pytest.fixture(scope="module")
def server(runs):
    """The app of both runs on uvicorn in a thread; yields its base URL."""
    uvicorn_server = make_server(build_app(load_runs([runs["multi"], runs["stsb"]])), "127.0.0.1", 0,
                                 log_level="warning")  # fmt: skip
    thread = threading.Thread(target=uvicorn_server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uvicorn_server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{bound_port(uvicorn_server)}"
    finally:
        uvicorn_server.should_exit = True
        thread.join(30)


@pytest.fixture(scope="module")
def client(server):
    with openai.OpenAI(base_url=f"{server}/v1", api_key="not-needed", max_retries=0) as opened:
        yield opened


def _inputs(task: str, count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [
        {f: " ".join(rng.choices(VOCAB, k=rng.randint(2, 9))) for f in get_task(task).fields}
        for _ in range(count)
    ]


def _predicted(server: str, task: str, rows: list[dict]) -> list[dict]:
    answer = httpx.post(f"{server}/v1/predict", json={"task": task, "inputs": rows}, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.json()["predictions"]


def _predict_cli(tmp_path: Path, run_dir: Path, task: str, rows: list[dict]) -> list[str]:
    inputs, output = tmp_path / f"{task}.jsonl", tmp_path / f"{task}_out.jsonl"
    inputs.write_text("".join(json.dumps({"task": task, **row}) + "\n" for row in rows))
    assert main(["predict", str(run_dir), "--inputs", str(inputs), "--output", str(output)]) == 0
    return [json.loads(line)["prediction"] for line in output.read_text().splitlines()]


def _tokens(text: str, special: bool = False) -> int:
    return len(build_tokenizer("seq2seq")(text, add_special_tokens=special)["input_ids"])


def test_the_openai_client_lists_one_model_per_served_run_and_task(client, runs):
    models = client.models.list().data
    assert [m.id for m in models] == ["multi/cb", "multi/sst2", "stsb/stsb"]
    assert {(m.object, m.owned_by) for m in models} == {("model", "attempt")}
    assert {m.created for m in models[:2]} == {int(runs["multi"].stat().st_mtime)}
    assert client.models.retrieve("stsb/stsb").id == "stsb/stsb"


def test_classification_completions_are_the_label_words_of_predict_with_their_log_probabilities(
    client, server, runs, tmp_path
):  # fmt: skip
    for task, seed in (("cb", 1), ("sst2", 2)):
        rows = _inputs(task, 6, seed)
        # a pair task's fields as a JSON object; a one-field task's text as it is
        prompts = [json.dumps(row) if len(row) > 1 else row["sentence"] for row in rows]
        completion = client.completions.create(model=f"multi/{task}", prompt=prompts, logprobs=2)
        served = _predicted(server, task, rows)
        labels = [choice.text for choice in completion.choices]
        assert (
            labels == [p["prediction"] for p in served] == _predict_cli(tmp_path, runs["multi"], task, rows)
        )
        assert [c.index for c in completion.choices] == list(range(6))
        assert {c.finish_reason for c in completion.choices} == {"stop"}
        for choice, predicted, prompt in zip(completion.choices, served, prompts, strict=True):
            scores = predicted["scores"]
            assert choice.logprobs.tokens == [choice.text]
            assert choice.logprobs.token_logprobs == [scores[choice.text]]
            assert choice.logprobs.text_offset == [len(prompt)]
            best = sorted(scores, key=lambda word: -scores[word])[:2]
            assert choice.logprobs.top_logprobs == [{word: scores[word] for word in best}]
        assert completion.object == "text_completion" and completion.model == f"multi/{task}"
        assert completion.id.startswith("cmpl-") and completion.created >= int(time.time()) - 60
        read = sum(
            _tokens(get_task(task).source_text(row), special=True) for row in rows
        )  # as the model reads it
        answered = sum(_tokens(label) for label in labels)
        assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (read, answered)
        assert completion.usage.total_tokens == read + answered


def test_a_single_prompt_and_a_bare_task_name_and_generation(client, server, runs, tmp_path):
    row = _inputs("cb", 1, 3)[0]
    one = client.completions.create(model="cb", prompt=json.dumps(row))  # the only run serving cb
    assert one.model == "multi/cb" and [c.text for c in one.choices] == [
        _predicted(server, "cb", [row])[0]["prediction"]
    ]
    rows = _inputs("stsb", 3, 4)
    generated = client.completions.create(
        model="stsb/stsb", prompt=[json.dumps(r) for r in rows], max_tokens=5
    )
    texts = [c.text for c in generated.choices]
    assert texts == [p["prediction"] for p in _predicted(server, "stsb", rows)]
    assert texts == _predict_cli(tmp_path, runs["stsb"], "stsb", rows)
    assert [c.logprobs for c in generated.choices] == [None] * 3


def test_an_unknown_model_gets_openais_404_error_shape(client, server):
    with pytest.raises(openai.NotFoundError) as raised:
        client.completions.create(model="nope/cb", prompt="x")
    assert raised.value.status_code == 404
    assert raised.value.body == {
        "message": "The model 'nope/cb' does not exist here. Served models: multi/cb, multi/sst2, stsb/stsb.",
        "type": "invalid_request_error", "param": "model", "code": "model_not_found",
    }  # fmt: skip
    raw = httpx.post(f"{server}/v1/completions", json={"model": "rte", "prompt": "x"}, timeout=30)
    assert raw.status_code == 404 and list(raw.json()) == ["error"] and set(raw.json()["error"]) == ERROR_KEYS
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("multi/rte")


@pytest.mark.parametrize(
    ("body", "status", "param", "says"),
    [
        (
            {"model": "multi/cb", "prompt": "just text"},
            400,
            "prompt",
            "cb reads 2 fields (premise, hypothesis)",
        ),
        (
            {"model": "multi/cb", "prompt": '{"premise": "a"}'},
            400,
            "prompt",
            "send the prompt as a JSON object",
        ),
        (
            {"model": "multi/sst2", "prompt": "good " * 40},
            413,
            "prompt",
            "tokens; the sst2 run reads at most 32",
        ),
        (
            {"model": "multi/sst2", "prompt": "good", "stream": True},
            400,
            "stream",
            "stream=True is not supported",
        ),
        ({"model": "multi/sst2", "prompt": "good", "n": 2}, 400, "n", "n=2 is not supported"),
        ({"model": "multi/sst2"}, 400, "prompt", "Invalid completion request: prompt: Field required"),
        ({"model": "multi/sst2", "prompt": [1, 2]}, 400, "prompt", "Invalid completion request"),
        ({"model": "multi/sst2", "prompt": []}, 400, "prompt", '"prompt" is an empty list'),
    ],
)
def test_bad_completion_requests_get_openais_error_shape(server, body, status, param, says):
    answer = httpx.post(f"{server}/v1/completions", json=body, timeout=30)
    error = answer.json()["error"]
    assert (answer.status_code, set(error), error["type"], error["param"]) == (
        status, ERROR_KEYS, "invalid_request_error", param
    )  # fmt: skip
    assert says in error["message"]


def test_a_body_that_is_not_json_gets_openais_error_shape(server):
    answer = httpx.post(f"{server}/v1/completions", content=b"{not json", timeout=30)
    assert answer.status_code == 400
    assert answer.json() == {"error": {"message": "The body is not JSON: send a completion request as a JSON object.",
                                       "type": "invalid_request_error", "param": None, "code": None}}  # fmt: skip
