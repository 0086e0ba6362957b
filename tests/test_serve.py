"""`attempt serve`: the real server on a free loopback port, real HTTP requests (httpx), tiny trained runs.

The run folders are trained for 2 steps on a tiny random T5 saved to disk (so `attempt predict` and the server
load it the same way): a multi-task ATTEMPT run (rte, cb: rank classification) and a prompt-tuning run (stsb:
generation), served together over one backbone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from attempt.cli import main  # noqa: E402
from attempt.config import AttemptConfig, TrainConfig  # noqa: E402
from attempt.data.collate import Collator  # noqa: E402
from attempt.evaluation import inference  # noqa: E402
from attempt.evaluation.evaluate import evaluate, predict  # noqa: E402
from attempt.modeling import AttemptModel  # noqa: E402
from attempt.prompts.library import PromptLibrary, SourcePrompt  # noqa: E402
from attempt.serve import ServedRun, bound_port, build_app, load_runs, make_server  # noqa: E402
from attempt.serve import predict as serve_predict  # noqa: E402
from attempt.serve.batcher import Batcher  # noqa: E402
from attempt.serve.predict import Item, length_groups  # noqa: E402
from attempt.tasks import get_task  # noqa: E402
from attempt.testing import WORDS, build_backbone, build_tokenizer  # noqa: E402
from attempt.training.loop import train  # noqa: E402
from benchmarks import serve_load  # noqa: E402

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
    """Run folders over one tiny T5: attempt (rte, cb), prompt tuning (stsb) and prompt tuning (rte again)."""
    root = tmp_path_factory.mktemp("serve")
    _add_sources(root / "lib-seq2seq")
    return {
        "multi": _train(root, data_dir, "multi", "seq2seq", tasks=("rte", "cb")),
        "stsb": _train(root, data_dir, "stsb", "seq2seq", mode="prompt_tuning", tasks=("stsb",)),
        "rte-pt": _train(root, data_dir, "rte-pt", "seq2seq", mode="prompt_tuning", tasks=("rte",)),
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
    batches, forwards = [], []  # the tasks of each batch the worker took, and of each forward it ran
    real_batch, real_infer = serve_predict.predict_batch, inference.infer_batch
    monkeypatch.setattr(
        "attempt.serve.app.predict_batch",
        lambda items, **o: batches.append({i.task.name for i in items}) or real_batch(items, **o),
    )
    monkeypatch.setattr(
        inference,
        "infer_batch",
        lambda model, collator, examples, **o: (
            forwards.append({e["task"] for e in examples}) or real_infer(model, collator, examples, **o)
        ),
    )

    requests = [(task, [row]) for task, rows in inputs.items() for row in rows]  # one input per request ...
    requests += [("cb", inputs["cb"][:3]), ("stsb", inputs["stsb"][2:])]  # ... and a few with several
    with (
        running(served, max_batch_size=16, max_wait_ms=200, max_padding=math.inf) as (url, _, _),
        ThreadPoolExecutor(16) as pool,
    ):
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
    assert {"rte", "cb"} in forwards, f"rte and cb (one run) never shared a forward: {forwards}"
    assert sum(map(len, batches)) < len(requests)  # fewer batches than requests: they were grouped


def _same(got: list[dict], alone: list[dict]) -> bool:
    """Same predictions; scores equal up to float noise (a batch pads rows to another length than alone)."""
    return [{**g, "scores": pytest.approx(g.get("scores"), abs=1e-4)} for g in got] == [
        {**a, "scores": a.get("scores")} for a in alone
    ]


def _key(row: dict) -> str:
    return json.dumps(row, sort_keys=True)


@pytest.mark.parametrize(("family", "tasks"), [("encoder", ("rte", "stsb")), ("causal", ("rte", "cb"))])
def test_the_other_families_match_attempt_predict(tmp_path, data_dir, family, tasks):
    """Encoder heads (classification and regression in one forward) and decoder-only rank classification
    (left padding, the input read once) answer as `attempt predict` does."""
    _add_sources(tmp_path / f"lib-{family}")
    run_dir = _train(tmp_path, data_dir, family, family, tasks=tasks)
    rows = [{"task": task, **row} for index, task in enumerate(tasks) for row in _inputs(task, 6, index)]
    expected = [record["prediction"] for record in _predict_cli(tmp_path, run_dir, rows)]
    with (
        running(load_runs([run_dir]), max_batch_size=32, max_wait_ms=200) as (url, _, _),
        ThreadPoolExecutor(12) as pool,
    ):
        bodies = [
            {"task": row["task"], "inputs": [{k: v for k, v in row.items() if k != "task"}]} for row in rows
        ]
        answers = list(pool.map(lambda body: _post(url, body).json()["predictions"][0], bodies))
    got = [answer["prediction"] for answer in answers]
    if family == "encoder":  # the head's regression value: equal up to float noise from the batch's padding
        assert got == [
            pytest.approx(value, abs=1e-4) if isinstance(value, float) else value for value in expected
        ]
        assert all(
            set(a) >= {"value"}
            if a["task"] == "stsb"
            else list(a["scores"]) == ["entailment", "not_entailment"]
            for a in answers
        )
    else:
        assert got == expected


def test_a_task_of_several_runs_is_asked_of_one_by_name(runs, tmp_path):
    """Like the quickstart's attempt-cb and prompt_tuning-cb: both served, the request names the run."""
    rows = _inputs("rte", 4, 11)
    expected = [
        r["prediction"]
        for r in _predict_cli(tmp_path, runs["rte-pt"], [{"task": "rte", **row} for row in rows])
    ]
    with running(load_runs([runs["multi"], runs["rte-pt"]])) as (url, _, _):
        unnamed = _post(url, {"task": "rte", "inputs": rows})
        named = _post(url, {"task": "rte", "inputs": rows, "run": "rte-pt"})
        other = _post(url, {"task": "rte", "inputs": rows, "run": "multi"})
        wrong = _post(url, {"task": "cb", "inputs": _inputs("cb", 1), "run": "rte-pt"})
        listed = [(entry["task"], entry["run"]) for entry in httpx.get(f"{url}/v1/tasks").json()["tasks"]]
    assert unnamed.status_code == 422
    assert (
        unnamed.json()["error"]
        == "Task 'rte' is served by several runs (multi, rte-pt): add \"run\": one of them."
    )
    assert [p["prediction"] for p in named.json()["predictions"]] == expected
    assert {p["run"] for p in named.json()["predictions"]} == {"rte-pt"} and {
        p["run"] for p in other.json()["predictions"]
    } == {"multi"}
    assert (
        wrong.status_code == 404
        and wrong.json()["error"] == "No served run named 'rte-pt' answers 'cb'; these do: multi."
    )
    assert listed == [("rte", "multi"), ("cb", "multi"), ("rte", "rte-pt")]


def test_attention_weights_come_on_request(served):
    row = _inputs("rte", 1)[0]
    with running(served) as (url, _, _):
        plain = _post(url, {"task": "rte", "inputs": [row]}).json()["predictions"][0]
        weighted = _post(url, {"task": "rte", "inputs": [row], "return_attention": True}).json()[
            "predictions"
        ][0]
        tuned = _post(url, {"task": "stsb", "inputs": [row], "return_attention": True}).json()["predictions"][
            0
        ]
    assert "attention_weights" not in plain
    weights = weighted["attention_weights"]
    assert list(weights) == ["mnli", "qnli", "target"] and sum(weights.values()) == pytest.approx(
        1.0, abs=1e-5
    )
    assert "attention_weights" not in tuned  # prompt tuning has no attention


def test_runs_share_one_backbone(served):
    first, second = served.runs
    assert first.model.backbone is second.model.backbone
    assert served.tasks == ["rte", "cb", "stsb"]
    assert (
        served.runs_of("CB") == [first]
        and served.runs_of("stsb") == [second]
        and served.runs_of("mnli") == []
    )


# --------------------------------------------------------------------------- one inference path, recorded
GOLDEN = Path(__file__).parent / "golden" / "inference_outputs.json"
GOLDEN_CASES = [("seq2seq", "rank"), ("seq2seq", "generate"), ("causal", "rank"), ("causal", "generate"),
                ("encoder", "rank")]  # fmt: skip


def _golden_model(family: str) -> AttemptModel:
    """A tiny ATTEMPT model over two random source prompts: rte and cb (classification), stsb (regression)."""
    torch.manual_seed(5)
    sources = [SourcePrompt(name, torch.randn(4, 32), task=name) for name in ("mnli", "qnli")]
    labels = {"rte": 2, "cb": 3, "stsb": 1} if family == "encoder" else None
    config = AttemptConfig(tasks=("rte", "cb", "stsb"), prompt_length=4, bottleneck_size=8, num_labels=labels)
    backbone = build_backbone(family, seed=9)  # seed 9: the tiny T5 generates words, not only its end token
    return AttemptModel.from_backbone(backbone, source_prompts=sources, config=config).eval()


def _served_run(model, tokenizer, method: str) -> ServedRun:
    """What `load_runs` makes of a run folder, for a model built in memory."""
    collator = Collator(tokenizer, model.family, model.tasks, 32, 4, cache=False)
    return ServedRun("golden", Path("golden"), model, SimpleNamespace(max_target_length=4), collator, method)


def _golden_outputs(family: str, method: str) -> dict[str, list[dict]]:
    """What `predict` returns and what the serve predictor answers (attention asked for every other input)
    for the same nine inputs of three tasks, JSON-shaped."""
    model, tokenizer = _golden_model(family), build_tokenizer(family)
    rows = [(task, row) for i, task in enumerate(("rte", "cb", "stsb")) for row in _inputs(task, 3, 20 + i)]
    predicted = predict(
        model, tokenizer, [{"task": task, **row} for task, row in rows], method=method, batch_size=4,
        max_source_length=32, max_target_length=4,
    )  # fmt: skip
    run = _served_run(model, tokenizer, method)
    items = [
        Item(run, get_task(task), row, attention=i % 2 == 0, length=run.collator.source_length((task, row)))
        for i, (task, row) in enumerate(rows)
    ]
    return json.loads(json.dumps({"predict": predicted, "serve": serve_predict.predict_batch(items)}))


def _approx(value):
    """`value` with every float compared up to 1e-5 (float noise between machines), the rest exactly."""
    if isinstance(value, float):
        return pytest.approx(value, abs=1e-5)
    if isinstance(value, dict):
        return {key: _approx(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_approx(item) for item in value]
    return value


def _keys(outputs: dict[str, list[dict]]) -> dict[str, list[list[str]]]:
    return {path: [list(record) for record in records] for path, records in outputs.items()}


@pytest.mark.parametrize(("family", "method"), GOLDEN_CASES)
def test_predict_and_the_serve_predictor_give_the_recorded_outputs(family, method):
    """Every key (in order) and value `predict` and the serve predictor gave before they shared one inference
    path (recorded in tests/golden/inference_outputs.json), on the three families, rank and generation."""
    golden = json.loads(GOLDEN.read_text())[f"{family}/{method}"]
    outputs = _golden_outputs(family, method)
    assert _keys(outputs) == _keys(golden)
    assert outputs == _approx(golden)


def test_evaluate_predict_and_serve_all_go_through_the_one_inference_function(runs, monkeypatch):
    """A run reloaded by `load_run` (`attempt predict`/`evaluate`), by `AttemptModel.from_pretrained`, and the
    served run (`load_runs`): every batch of each goes through `attempt.evaluation.inference.infer_batch`."""
    from attempt.runs.build import load_run

    calls: list[tuple[str, tuple[str, ...]]] = []  # (who, the tasks of the batch)
    who = ["predict"]
    real = inference.infer_batch

    def spy(model, collator, examples, **options):
        calls.append((who[0], tuple(sorted({e["task"] for e in examples}))))
        return real(model, collator, examples, **options)

    monkeypatch.setattr(inference, "infer_batch", spy)
    model, tokenizer, config = load_run(runs["multi"])
    inputs = [{"task": "rte", **row} for row in _inputs("rte", 2)] + [{"task": "cb", **_inputs("cb", 1)[0]}]
    predict(model, tokenizer, inputs, max_source_length=32)
    who[0] = "from_pretrained"
    reloaded = AttemptModel.from_pretrained(model.backbone, runs["multi"] / "best")
    predict(reloaded.eval(), tokenizer, inputs, max_source_length=32)
    who[0] = "evaluate"
    evaluate(
        model, tokenizer, {"rte": [{**row, "label": 0} for row in _inputs("rte", 2)]}, max_source_length=32
    )
    who[0] = "serve"
    run = load_runs([runs["multi"]]).runs[0]
    rows = [(get_task(row.pop("task")), row) for row in map(dict, inputs)]
    serve_predict.predict_batch([Item(run, task, row, length=1) for task, row in rows])
    assert calls == [
        ("predict", ("rte",)), ("predict", ("cb",)), ("from_pretrained", ("rte",)), ("from_pretrained", ("cb",)),
        ("evaluate", ("rte",)), ("serve", ("cb", "rte")),
    ]  # fmt: skip


def test_serve_predict_defines_no_inference_of_its_own():
    """The model calls of a prediction live in `attempt.evaluation.inference` only: neither the serve predictor
    nor the evaluation loop touches logits, scores candidates, generates or reads the mixture."""
    import attempt.evaluation.evaluate as evaluation

    model_calls = ("score_candidates", ".generate(", "logits", "log_softmax", "argmax", "prompted_inputs",
                   "batch_decode", "label_candidates", "run.model(", "model(**")  # fmt: skip
    for module in (serve_predict, evaluation):
        source = Path(module.__file__).read_text()
        assert [call for call in model_calls if call in source] == [], module.__name__
    source = Path(inference.__file__).read_text()
    assert all(call in source for call in model_calls if call != "run.model(")


@pytest.mark.parametrize(("family", "method"), GOLDEN_CASES)
def test_predict_and_the_serve_predictor_give_equal_labels_and_scores(family, method, monkeypatch):
    """The same nine inputs of three tasks: `predict` batches them per task, the serve predictor mixes the
    tasks in one pass per path; the labels are equal, and the scores, values and attention weights agree up
    to float noise from the other padding."""
    model, tokenizer = _golden_model(family), build_tokenizer(family)
    rows = [(task, row) for i, task in enumerate(("rte", "cb", "stsb")) for row in _inputs(task, 3, 30 + i)]
    seen: dict[int, inference.Inference] = {}  # predict's answers by input position
    real = inference.infer_batch

    def spy(model, collator, examples, **options):
        answers = real(model, collator, examples, **options)
        seen.update((e["index"], a) for e, a in zip(examples, answers, strict=True))
        return answers

    monkeypatch.setattr(inference, "infer_batch", spy)
    predicted = predict(
        model, tokenizer, [{"task": task, **row} for task, row in rows], method=method, batch_size=4,
        max_source_length=32, max_target_length=4,
    )  # fmt: skip
    monkeypatch.setattr(inference, "infer_batch", real)
    run = _served_run(model, tokenizer, method)
    served = serve_predict.predict_run(
        run, [Item(run, get_task(t), r, attention=True, length=9) for t, r in rows]
    )
    for position, (record, answer) in enumerate(zip(predicted, served, strict=True)):
        assert answer["prediction"] == _approx(record["prediction"]), (family, method, position)
        assert answer["attention_weights"] == _approx(record["attention_weights"])
        if "scores" in answer:  # classification: the label words' scores predict ranked by
            assert list(answer["scores"].values()) == _approx(seen[position].scores)
            assert answer["prediction"] == max(answer["scores"], key=answer["scores"].get)
        if "value" in answer and family == "encoder":  # the head's regression value
            assert answer["value"] == _approx(seen[position].value)
    assert sorted(seen) == list(range(len(rows)))


# ---------------------------------------------------------------------------------------- bad requests
BAD_REQUESTS = [
    ({"task": "mnli", "inputs": [{"premise": "a", "hypothesis": "b"}]}, 404, "Task 'mnli' is not served here. Served tasks: rte, cb, stsb"),
    ({"task": "rte", "inputs": [{"sentence1": "a cat"}]}, 422, "inputs[0]: field(s) 'sentence2' missing for task 'rte' (row has: sentence1). Give each input the task's fields (sentence1, sentence2)."),
    ({"task": "rte", "inputs": [{"sentence1": "a", "sentence2": ["b"]}]}, 422, "inputs[0], field 'sentence2': expected text, got a list (['b']). Quote it as a JSON string."),
    ({"task": "rte", "inputs": ["a cat"]}, 422, "inputs[0] is not a JSON object"),
    ({"task": "rte", "inputs": []}, 422, '"inputs" is empty'),
    ({"task": "rte", "inputs": [{"sentence1": "a", "sentence2": "b"}] * 5}, 413, "5 inputs in one request; this server takes at most 4"),
    ({"task": "rte", "inputs": [{"sentence1": "the cat " * 20, "sentence2": "b"}]}, 413, "tokens; the rte run reads at most 32"),
    ({"task": "rte", "inputs": [{"sentence1": "x" * 5000, "sentence2": "b"}]}, 413, "far longer than the 32 tokens"),
    ({"inputs": [{"sentence1": "a", "sentence2": "b"}]}, 422, "body.task: Field required"),
    ({"task": "rte", "inputs": [], "attention": True}, 422, "body.attention: Extra inputs are not permitted"),
]  # fmt: skip


def test_bad_requests_get_a_clear_4xx_and_do_not_poison_the_batch(served):
    good = _inputs("cb", 6, 5)
    with running(served, max_inputs=4, max_batch_size=64, max_wait_ms=300) as (url, _, _):
        alone = [_post(url, {"task": "cb", "inputs": [row]}).json()["predictions"][0] for row in good]
        with ThreadPoolExecutor(16) as pool:  # the bad ones arrive while the good ones wait for their batch
            bodies = [{"task": "cb", "inputs": [row]} for row in good] + [body for body, _, _ in BAD_REQUESTS]
            answers = list(pool.map(lambda body: _post(url, body), bodies))
        not_json = httpx.post(
            f"{url}/v1/predict", content=b"{not json", headers={"content-type": "application/json"}
        )
        health = httpx.get(f"{url}/health")
    assert _same([a.json()["predictions"][0] for a in answers[: len(good)]], alone)
    for (_, status, message), answer in zip(BAD_REQUESTS, answers[len(good) :], strict=True):
        assert answer.status_code == status, answer.text
        assert message in answer.json()["error"]
    assert not_json.status_code == 422 and "Invalid request body" in not_json.json()["error"]
    assert health.status_code == 200 and health.json()["status"] == "ok"


def test_an_input_that_breaks_the_model_fails_alone(served, monkeypatch):
    real = serve_predict.predict_run

    def fragile(run, items, *options):  # stands for an input the model cannot take (it passed validation)
        if any("boom" in item.row.get("sentence1", "") for item in items):
            raise RuntimeError("the model broke on this input")
        return real(run, items, *options)

    monkeypatch.setattr(serve_predict, "predict_run", fragile)
    rows = _inputs("rte", 5, 7)
    bodies = [{"task": "rte", "inputs": [row]} for row in rows] + [
        {"task": "rte", "inputs": [{"sentence1": "boom", "sentence2": "a"}]}
    ]
    with running(served, max_batch_size=64, max_wait_ms=300) as (url, _, _):
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda body: _post(url, body), bodies))
        alone = [_post(url, {"task": "rte", "inputs": [row]}).json()["predictions"][0] for row in rows]
    assert [a.status_code for a in answers] == [200] * len(rows) + [500]
    assert _same([a.json()["predictions"][0] for a in answers[:-1]], alone)
    assert answers[-1].json()["error"] == "Prediction failed (RuntimeError: the model broke on this input)."


# -------------------------------------------------------------------------------- tasks, health, metrics
def test_tasks_health_and_metrics(served, runs):
    with running(served) as (url, _, _):
        assert _post(url, {"task": "rte", "inputs": _inputs("rte", 3)}).status_code == 200
        assert _post(url, {"task": "nope", "inputs": _inputs("rte", 1)}).status_code == 404
        listed = httpx.get(f"{url}/v1/tasks").json()
        health = httpx.get(f"{url}/health").json()
        metrics = httpx.get(f"{url}/metrics")
    assert listed["backbone"] == str(runs["multi"].parent / "tiny-seq2seq") and listed["family"] == "seq2seq"
    by_task = {entry["task"]: entry for entry in listed["tasks"]}
    assert list(by_task) == ["rte", "cb", "stsb"]
    assert by_task["cb"] == {
        "task": "cb", "run": "multi", "run_dir": str(runs["multi"]), "mode": "attempt", "kind": "classification",
        "fields": ["premise", "hypothesis"], "label_words": ["entailment", "contradiction", "neutral"],
        "answered_by": "rank", "max_input_tokens": 32, "source_prompts": ["mnli", "qnli"],
    }  # fmt: skip
    assert by_task["stsb"]["answered_by"] == "generate" and by_task["stsb"]["source_prompts"] == []
    assert health == {"status": "ok", "tasks": ["rte", "cb", "stsb"], "inputs_in_flight": 0}
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'attempt_serve_requests_total{status="200",task="rte"} 1.0' in text
    assert 'attempt_serve_requests_total{status="404",task="unknown"} 1.0' in text  # never the client's text
    assert 'attempt_serve_inputs_total{task="rte"} 3.0' in text
    assert "attempt_serve_batch_size_count 1.0" in text and "attempt_serve_batch_size_sum 3.0" in text
    assert (
        'attempt_serve_request_seconds_count{task="rte"} 1.0' in text
        and "attempt_serve_inputs_in_flight 0.0" in text
    )


# -------------------------------------------------------------------------------------------- shutdown
def test_shutdown_drains_in_flight_requests(served):
    rows = _inputs("rte", 6, 9)
    with running(served) as (url, _, _):
        alone = [_post(url, {"task": "rte", "inputs": [row]}).json()["predictions"][0] for row in rows]
    with running(served, max_batch_size=64, max_wait_ms=5000) as (url, server, app):
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(_post, url, {"task": "rte", "inputs": [row]}) for row in rows]
            deadline = time.monotonic() + 30
            while app.state.batcher.pending < len(rows):  # all accepted, their batch still filling
                assert time.monotonic() < deadline
                time.sleep(0.01)
            server.should_exit = True  # what SIGINT / SIGTERM do
            answers = [future.result() for future in futures]
        assert _stops_listening(url), "the server still answers after its shutdown"
    assert [a.status_code for a in answers] == [200] * len(rows)
    assert _same([a.json()["predictions"][0] for a in answers], alone)


def _stops_listening(url: str, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/health", timeout=1)
        except httpx.ConnectError:
            return True
        time.sleep(0.05)
    return False


# ---------------------------------------------------------------------------------------- refused runs
def _copy_config(runs: dict[str, Path], tmp_path: Path, name: str, **changes) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    config = json.loads((runs["stsb"] / "train_config.json").read_text())
    (folder / "train_config.json").write_text(json.dumps({**config, **changes}))
    return folder


def test_runs_that_cannot_share_one_backbone_are_refused_before_loading(runs, tmp_path):
    other = _copy_config(
        runs, tmp_path, "other", backbone="HuggingFaceTB/SmolLM2-135M-Instruct", tasks=["sst2"]
    )
    with pytest.raises(
        ValueError, match=r"trained on different backbones .* start one `attempt serve` per backbone"
    ):
        load_runs([runs["multi"], other])
    halved = _copy_config(runs, tmp_path, "halved", backbone_dtype="bfloat16", tasks=["sst2"])
    with pytest.raises(ValueError, match="different backbones"):
        load_runs([runs["multi"], halved])
    with pytest.raises(ValueError, match=r"are both named 'multi'; a request picks a run by its folder name"):
        load_runs([runs["multi"], runs["multi"]])
    tuned = _copy_config(runs, tmp_path, "tuned", mode="finetune", tasks=["sst2"])
    with pytest.raises(ValueError, match="mode='finetune' run: it changed the backbone"):
        load_runs([tuned])
    with pytest.raises(FileNotFoundError, match="is not a finished training run"):
        load_runs([tmp_path])


def test_the_serve_command_refuses_mixed_backbones_in_one_line(runs, tmp_path, capsys):
    other = _copy_config(
        runs, tmp_path, "other", backbone="HuggingFaceTB/SmolLM2-135M-Instruct", tasks=["sst2"]
    )
    assert main(["serve", str(runs["multi"]), str(other)]) == 2
    error = capsys.readouterr().err
    assert (
        error.startswith("attempt serve: error: These runs were trained on different backbones")
        and error.count("\n") == 1
    )


@pytest.mark.slow
def test_the_serve_command_answers_and_stops_on_ctrl_c(runs):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "attempt.cli",
        "serve",
        str(runs["multi"]),
        str(runs["stsb"]),
        "--port",
        str(port),
        "--threads",
        "1",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 120
        while True:
            assert process.poll() is None and time.monotonic() < deadline, (
                process.stderr.read() if process.poll() is not None else "no answer"
            )
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.2)
        answer = _post(url, {"task": "cb", "inputs": _inputs("cb", 2)})
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert answer.status_code == 200 and len(answer.json()["predictions"]) == 2
    assert process.returncode == 0, err
    assert f"{runs['multi']}: rte, cb (attempt)" in out and f"{runs['stsb']}: stsb (prompt_tuning)" in out
    assert out.rstrip().endswith("attempt serve: stopped.")


# ---------------------------------------------------------------------------------------------- batcher
def test_the_batcher_groups_up_to_max_batch_size_or_max_wait_and_drains_on_stop():
    seen: list[list[str]] = []

    def record(items):
        seen.append([item.row["text"] for item in items])
        return [{"echo": item.row["text"]} for item in items]

    def item(text: str, length: int = 1) -> Item:
        return Item(run=None, task=get_task("sst2"), row={"text": text}, length=length)  # type: ignore[arg-type]

    async def scenario():
        batcher = Batcher(record, max_batch_size=3, max_wait_ms=50)
        await batcher.start()
        sizes = [await batcher.submit([item("alone")])]  # waits max_wait for company, then goes alone
        many = await asyncio.gather(*(batcher.submit([item(f"r{i}", length=i)]) for i in range(5)))
        late = asyncio.ensure_future(batcher.submit([item("late")]))
        await asyncio.sleep(0)  # queued
        await batcher.stop()  # predicts what was queued before stopping
        return sizes, many, await late

    _, many, late = asyncio.run(scenario())
    assert seen[0] == ["alone"]
    assert [len(batch) for batch in seen[1:3]] == [3, 2] and seen[1] == ["r2", "r1", "r0"]  # longest first
    assert [answer[0]["echo"] for answer in many] == [f"r{i}" for i in range(5)]
    assert late == [{"echo": "late"}]


def test_length_groups_cut_a_batch_where_padding_would_pass_the_bound():
    lengths = [5, 40, 6, 38, 20, 7, 39, 21]
    items = [Item(run=None, task=get_task("sst2"), row={}, length=n) for n in lengths]  # type: ignore[arg-type]
    assert length_groups(items, math.inf) == [[1, 6, 3, 7, 4, 5, 2, 0]]  # one forward, longest first
    groups = length_groups(items, 0.25)
    assert groups == [[1, 6, 3, 7], [4], [5, 2, 0]]  # 40 × 5 rows > 1.25 × 158 real tokens: 20 starts a group
    for group in groups:  # padded tokens (longest × rows) within 1.25 × the real ones
        assert lengths[group[0]] * len(group) <= 1.25 * sum(lengths[i] for i in group)
    assert length_groups(items, 0.0) == [[1], [6], [3], [7], [4], [5], [2], [0]]  # all lengths differ


# -------------------------------------------------------------------------------------------- benchmark
def test_the_load_benchmark_reports_medians_and_ratios(tmp_path):
    bench = serve_load
    repeats = [
        {"latencies": [0.01] * 9 + [0.5], "seconds": seconds, "batches": 5, "inputs": 10}
        for seconds in (1.0, 0.5, 2.0)
    ]
    cell = bench.summarise(4, repeats)
    assert cell == {"concurrency": 4, "requests": 30, "requests_per_s": 10.0, "requests_per_s_range": [5.0, 20.0],
                    "p50_ms": 10.0, "p99_ms": 500.0, "mean_batch": 2.0}  # fmt: skip
    rates = {
        "batched": 30.0,
        "batched_one_forward": 20.0,
        "batched_no_wait": 15.0,
        "one_at_a_time": 10.0,
        "copy_per_task": 20.0,
        "batched_equal_threads": 50.0,
    }
    setups = {
        name: {"setup": name, "servers": 1, "peak_rss_mib": 900.0 if name == "copy_per_task" else 300.0,
               "cells": [{**cell, "concurrency": c, "requests_per_s": rate} for c in bench.CONCURRENCY]}
        for name, rate in rates.items()
    }  # fmt: skip
    ratios = bench.ratios(setups)
    assert ratios["batched_vs_one_at_a_time_requests_per_s"] == {"1": 3.0, "4": 3.0, "16": 3.0}
    assert (
        ratios["batched_vs_copy_per_task_requests_per_s"]["16"] == 1.5
        and ratios["copy_per_task_vs_batched_memory"] == 3.0
    )
    assert ratios["batched_equal_threads_vs_copy_per_task_requests_per_s"] == {"1": 2.5, "4": 2.5, "16": 2.5}
    result = {"backbone": "tiny-t5", "requests": 10, "repeats": 3, "max_seconds": 5, "threads": 1, "machine": "m",
              "setups": setups, "ratios": ratios}  # fmt: skip
    bench.write_report(result, tmp_path)
    old_setups = {k: v for k, v in setups.items() if k != "batched_equal_threads"}  # a result from before it
    bench.write_report(
        {**result, "backbone": "minilm", "setups": old_setups, "ratios": bench.ratios(old_setups)}, tmp_path
    )
    assert list(json.loads((tmp_path / "serve_load.json").read_text())) == ["tiny-t5", "minilm"]
    report = (tmp_path / "serve_load.md").read_text()
    assert "## tiny-t5" in report and "## minilm" in report
    assert "| req/s: batched / one at a time | 3.0× | 3.0× | 3.0× |" in report
    assert (
        report.count(
            "| req/s: batched with the copies' threads / a backbone copy per task | 2.5× | 2.5× | 2.5× |"
        )
        == 1
    )
