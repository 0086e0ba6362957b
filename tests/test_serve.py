"""`attempt serve`: the real server on a free loopback port, real HTTP requests (httpx), tiny trained runs.

The run folders are trained for 2 steps on a tiny random T5 saved to disk (so `attempt predict` and the server
load it the same way): a multi-task ATTEMPT run (rte, cb: rank classification) and a prompt-tuning run (stsb:
generation), served together over one backbone.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from attempt.cli import main  # noqa: E402
from attempt.config import TrainConfig  # noqa: E402
from attempt.prompts import PromptLibrary, SourcePrompt  # noqa: E402
from attempt.serve import bound_port, build_app, load_runs, make_server  # noqa: E402
from attempt.serve import predict as serve_predict  # noqa: E402
from attempt.tasks import get_task  # noqa: E402
from attempt.testing import WORDS, build_backbone, build_tokenizer  # noqa: E402
from attempt.train import train  # noqa: E402

pytestmark = pytest.mark.data
VOCAB = [w for w in WORDS if w.isalpha()]


# ------------------------------------------------------------------------------------------- fixtures
def _train(root: Path, data_dir: Path, name: str, family: str, **fields) -> Path:
    backbone = root / f"tiny-{family}"
    if not backbone.is_dir():
        build_backbone(family).save_pretrained(backbone)
        build_tokenizer(family).save_pretrained(backbone)
    config = TrainConfig(**{
        "mode": "attempt", "backbone": str(backbone), "library": str(root / f"lib-{family}"),
        "output_dir": str(root / name), "data_dir": str(data_dir), "attempt": {"prompt_length": 4, "bottleneck_size": 8},
        "max_steps": 2, "batch_size": 4, "eval_batch_size": 8, "learning_rate": 0.3, "eval_every": 2,
        "train_limit": 16, "eval_limit": 8, "max_source_length": 32, "max_target_length": 8, "seed": 7, **fields,
    })  # fmt: skip
    train(config, progress=False)
    return Path(config.output_dir)


def _add_sources(library: Path, d: int = 32) -> None:
    lib = PromptLibrary(library)
    for i, name in enumerate(("mnli", "qnli")):
        if name not in lib.names():
            torch.manual_seed(100 + i)
            lib.add(SourcePrompt(name, torch.randn(4, d) * 0.5, task=name, backbone="tiny"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir) -> dict[str, Path]:
    """Two run folders over one tiny T5: attempt (rte, cb) and prompt tuning (stsb)."""
    root = tmp_path_factory.mktemp("serve")
    _add_sources(root / "lib-seq2seq")
    return {
        "multi": _train(root, data_dir, "multi", "seq2seq", tasks=("rte", "cb")),
        "stsb": _train(root, data_dir, "stsb", "seq2seq", mode="prompt_tuning", tasks=("stsb",)),
    }


@pytest.fixture(scope="module")
def served(runs):
    return load_runs([runs["multi"], runs["stsb"]])


def _inputs(task: str, count: int, seed: int = 0) -> list[dict]:
    """Inputs of varied lengths (so batches pad), words from the tiny vocabulary."""
    rng = random.Random(seed)
    fields = get_task(task).fields
    return [{f: " ".join(rng.choices(VOCAB, k=rng.randint(2, 9))) for f in fields} for _ in range(count)]


@contextlib.contextmanager
def running(served, **options):
    """The app on uvicorn in a thread, on a free loopback port; yields (url, server, app)."""
    app = build_app(served, **options)
    server = make_server(app, "127.0.0.1", 0, log_level="warning")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{bound_port(server)}", server, app
    finally:
        server.should_exit = True
        thread.join(30)


def _post(url: str, body: dict) -> httpx.Response:
    return httpx.post(f"{url}/v1/predict", json=body, timeout=60)


def _predict_cli(tmp_path: Path, run_dir: Path, rows: list[dict]) -> list[dict]:
    """What `attempt predict` writes for `rows` (each with its "task")."""
    inputs, output = tmp_path / f"{run_dir.name}_in.jsonl", tmp_path / f"{run_dir.name}_out.jsonl"
    inputs.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert main(["predict", str(run_dir), "--inputs", str(inputs), "--output", str(output)]) == 0
    return [json.loads(line) for line in output.read_text().splitlines()]


# ------------------------------------------------------------------------------------ predictions
def test_mixed_task_concurrent_requests_match_attempt_predict(served, runs, tmp_path, monkeypatch):
    inputs = {"rte": _inputs("rte", 8, 1), "cb": _inputs("cb", 8, 2), "stsb": _inputs("stsb", 6, 3)}
    multi = [{"task": t, **r} for t in ("rte", "cb") for r in inputs[t]]
    tuned = [{"task": "stsb", **r} for r in inputs["stsb"]]
    predicted = _predict_cli(tmp_path, runs["multi"], multi) + _predict_cli(tmp_path, runs["stsb"], tuned)
    expected = {_key(row): record["prediction"] for row, record in zip(multi + tuned, predicted, strict=True)}
    batches = []  # the tasks of each batch the worker predicted
    real = serve_predict.predict_batch
    monkeypatch.setattr("attempt.serve.app.predict_batch", lambda items: batches.append({i.task.name for i in items}) or real(items))

    requests = [(task, [row]) for task, rows in inputs.items() for row in rows]  # one input per request ...
    requests += [("cb", inputs["cb"][:3]), ("stsb", inputs["stsb"][2:])]  # ... and a few with several
    with running(served, max_batch_size=16, max_wait_ms=200) as (url, _, _), ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda r: _post(url, {"task": r[0], "inputs": r[1]}), requests))

    assert [a.status_code for a in answers] == [200] * len(requests)
    for (task, rows), answer in zip(requests, answers, strict=True):
        body = answer.json()
        assert body["task"] == task and len(body["predictions"]) == len(rows)
        for row, got in zip(rows, body["predictions"], strict=True):
            assert got["prediction"] == expected[_key({"task": task, **row})], (task, row)
            if task == "stsb":  # generation: the text, and the number read from it (or null)
                assert got["run"] == "stsb" and "scores" not in got
            else:  # rank classification: every label word's log-likelihood; the best one is the prediction
                assert got["run"] == "multi" and list(got["scores"]) == list(get_task(task).label_words)
                assert got["prediction"] == max(got["scores"], key=got["scores"].get)
    assert any(len(tasks) > 1 for tasks in batches), f"no batch mixed tasks: {batches}"
    assert sum(map(len, batches)) < len(requests)  # fewer batches than requests: they were grouped


def _key(row: dict) -> str:
    return json.dumps(row, sort_keys=True)


def test_attention_weights_come_on_request(served):
    row = _inputs("rte", 1)[0]
    with running(served) as (url, _, _):
        plain = _post(url, {"task": "rte", "inputs": [row]}).json()["predictions"][0]
        weighted = _post(url, {"task": "rte", "inputs": [row], "return_attention": True}).json()["predictions"][0]
        tuned = _post(url, {"task": "stsb", "inputs": [row], "return_attention": True}).json()["predictions"][0]
    assert "attention_weights" not in plain
    weights = weighted["attention_weights"]
    assert list(weights) == ["mnli", "qnli", "target"] and sum(weights.values()) == pytest.approx(1.0, abs=1e-5)
    assert "attention_weights" not in tuned  # prompt tuning has no attention


def test_runs_share_one_backbone(served):
    first, second = served.runs
    assert first.model.backbone is second.model.backbone
    assert served.tasks == ["rte", "cb", "stsb"]
    assert served.run_of("cb") is first and served.run_of("stsb") is second and served.run_of("mnli") is None
