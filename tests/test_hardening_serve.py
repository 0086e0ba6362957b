"""Hostile or careless input to `attempt predict`, `attempt serve` and a resumed run (issue 25, round two): each
case is one line naming the problem and the fix (exit code 2 from the command line, a 4xx in the documented
shape from the server), and nothing is lost. Each test failed on the code before it (1316ae4).

One tiny run serves them all: prompt tuning on the product_reviews task file (examples/own_task) over a tiny
random T5, max_source_length 32, trained for 1 step.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from conftest import forgetting_registered_tasks

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from attempt import cli  # noqa: E402
from attempt.serve import bound_port, build_app, load_runs, make_server  # noqa: E402
from attempt.testing import build_backbone, build_tokenizer  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "own_task"
TASK = "product_reviews"
LIMIT = 32  # the run's max_source_length
SHORTEN = "Shorten it or split it into several inputs."


pytestmark = pytest.mark.usefixtures("forget_registered_tasks")  # tests here register tasks on purpose


def train_argv(run: Path, backbone: Path) -> list[str]:
    """`attempt train` of the tiny run into `run`, with the task file in the folder beside it."""
    return ["train", "--task-file", str(run.parent / "task" / "task.yaml"), "--mode", "prompt_tuning", "--backbone",
            str(backbone), "--output-dir", str(run), "--max-steps", "1", "--batch-size", "4", "--eval-every",
            "1", "--train-limit", "8", "--eval-limit", "4", "--attempt.prompt-length", "4", "--max-source-length",
            str(LIMIT), "--quiet"]  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished tiny run folder (its task file, backbone and run side by side in one folder); the task its
    training registered is forgotten after the module."""
    root = tmp_path_factory.mktemp("hardening-serve")
    shutil.copytree(EXAMPLE, root / "task")
    build_backbone("seq2seq").save_pretrained(root / "tiny-t5")
    build_tokenizer("seq2seq").save_pretrained(root / "tiny-t5")
    with forgetting_registered_tasks():
        code = cli.main(train_argv(root / "run", root / "tiny-t5"))
        assert code == 0
        yield root / "run"


def one_line_error(capsys, *argv) -> str:
    """Run the CLI, expect exit code 2 and exactly one error line on stderr (besides the backbone loader's
    progress bars), no traceback; return that line."""
    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("Loading weights")]
    assert len(lines) == 1 and lines[0].startswith("attempt ") and "Traceback" not in err, err
    return lines[0]


def write_inputs(path: Path, *texts) -> Path:
    path.write_text("".join(json.dumps({"task": TASK, "text": text}) + "\n" for text in texts))
    return path


@contextlib.contextmanager
def serving(run_dir: Path):
    """`attempt serve RUN` on a free loopback port, in a thread; yields its URL."""
    server = make_server(build_app(load_runs([run_dir]), max_wait_ms=0), "127.0.0.1", 0, log_level="warning")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{bound_port(server)}"
    finally:
        server.should_exit = True
        thread.join(30)


def served_error(url: str, text) -> tuple[int, str]:
    answer = httpx.post(f"{url}/v1/predict", json={"task": TASK, "inputs": [{"text": text}]}, timeout=60)
    assert list(answer.json()) == ["error"], answer.text
    return answer.status_code, answer.json()["error"]


# --------------------------------------------------------------------------- 1. predict over its own inputs
@pytest.mark.parametrize("spelling", ["same", "another-spelling", "symlink", "hard-link"])
def test_predict_refuses_to_write_over_its_own_inputs(run, tmp_path, capsys, spelling):
    inputs = write_inputs(tmp_path / "keep.jsonl", "a fine jacket", "poor")
    (tmp_path / "sub").mkdir()
    output = {"same": inputs, "another-spelling": tmp_path / "sub" / ".." / "." / "keep.jsonl",
              "symlink": tmp_path / "link.jsonl", "hard-link": tmp_path / "hard.jsonl"}[spelling]  # fmt: skip
    if spelling == "symlink":
        output.symlink_to(inputs)
    elif spelling == "hard-link":
        os.link(inputs, output)
    before = inputs.read_bytes()
    err = one_line_error(capsys, "predict", run, "--inputs", inputs, "--output", output)
    assert err == (
        f"attempt predict: error: --output {output} is the inputs file {inputs}: the predictions would replace your "
        f"inputs. Write the predictions elsewhere, e.g. --output {tmp_path / 'keep.predictions.jsonl'}."
    )
    assert inputs.read_bytes() == before and output.read_bytes() == before
    assert output.is_symlink() == (spelling == "symlink")


def test_predict_refuses_to_write_over_the_run_it_reads_or_into_a_folder(run, tmp_path, capsys):
    inputs = write_inputs(tmp_path / "in.jsonl", "a fine jacket")
    config, best = (run / "train_config.json").read_bytes(), sorted(p.name for p in (run / "best").iterdir())
    suggestion = tmp_path / "in.predictions.jsonl"
    for output, part in (
        (run / "train_config.json", "train_config.json"),
        (run / "best" / "x.jsonl", "best"),
    ):
        err = one_line_error(capsys, "predict", run, "--inputs", inputs, "--output", output)
        assert err == (
            f"attempt predict: error: --output {output} is in the run folder's {part}, which predict reads: the "
            f"predictions would replace it. Write the predictions elsewhere, e.g. --output {suggestion}."
        )
    err = one_line_error(capsys, "predict", run, "--inputs", inputs, "--output", tmp_path)
    assert err == (
        f"attempt predict: error: --output {tmp_path} is a folder; name a file in it, e.g. "
        f"{tmp_path / 'predictions.jsonl'}."
    )
    assert (run / "train_config.json").read_bytes() == config
    assert sorted(p.name for p in (run / "best").iterdir()) == best


# ------------------------------------------------------------------ 2. one validation for predict and serve
NOT_TEXT = [
    (5, "a number (5)"), (2.5, "a number (2.5)"), (None, "null"), (True, "true"), (["a"], "a list (['a'])"),
    ({"a": "b"}, "an object ({'a': 'b'})"),
]  # fmt: skip


def test_serve_and_predict_refuse_the_same_non_text_inputs_with_the_same_message(run, tmp_path, capsys):
    from attempt.evaluation import evaluate
    from attempt.serve import validation

    assert validation.check_input is evaluate.check_input  # one function checks the inputs of both
    inputs, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    with serving(run) as url:
        for value, shown in NOT_TEXT:
            same = f", field 'text': expected text, got {shown}. Quote it as a JSON string."
            assert served_error(url, value) == (422, f"inputs[0]{same}")
            write_inputs(inputs, value)
            err = one_line_error(capsys, "predict", run, "--inputs", inputs, "--output", output)
            assert err == f"attempt predict: error: {inputs}, line 1{same}"
        missing = httpx.post(f"{url}/v1/predict", json={"task": TASK, "inputs": [{"txt": "a"}]}, timeout=60)
    assert missing.status_code == 422 and missing.json() == {
        "error": "inputs[0]: field(s) 'text' missing for task 'product_reviews' (row has: txt). Give each input the "
        "task's fields (text)."
    }
    assert not output.exists()


# --------------------------------------------------------------------- 3. one length rule for predict and serve
def tokens(run: Path, text: str) -> int:
    """The tokens the run reads for `text`: its template ("review: {text}") through the backbone's tokenizer."""
    from transformers import AutoTokenizer

    return len(AutoTokenizer.from_pretrained(run.parent / "tiny-t5")(f"review: {text}")["input_ids"])


def test_a_1_mb_input_is_refused_by_predict_before_the_model_loads_as_serve_refuses_it(
    run, tmp_path, capsys, monkeypatch
):
    huge = "word " * 200_000
    inputs, output = write_inputs(tmp_path / "in.jsonl", "a fine jacket", huge), tmp_path / "out.jsonl"
    far = (f" is far longer than the {LIMIT} tokens {TASK} reads (1,000,000 characters); shorten it or split it "
           "into several inputs.")  # fmt: skip
    with serving(run) as url:
        assert served_error(url, huge) == (413, f"inputs[0]{far}")

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the inputs were checked")

    monkeypatch.setattr("attempt.runs.build.load_run", no_model)
    err = one_line_error(capsys, "predict", run, "--inputs", inputs, "--output", output)
    assert err == f"attempt predict: error: {inputs}, line 2{far}"
    assert not output.exists()


def test_inputs_a_few_tokens_too_long_are_refused_by_both_naming_every_such_line(run, tmp_path, capsys):
    fits, over = " ".join(["good"] * (LIMIT - 3)), " ".join(["good"] * (LIMIT - 2))
    assert (tokens(run, fits), tokens(run, over)) == (LIMIT, LIMIT + 1)  # "review", ":", the words, "</s>"
    inputs, output = write_inputs(tmp_path / "in.jsonl", over, fits, over, over), tmp_path / "out.jsonl"
    cut = (f" is {LIMIT + 1} tokens; the {TASK} run reads at most {LIMIT} (its max_source_length), so the rest "
           f"would be cut. {SHORTEN}")  # fmt: skip
    with serving(run) as url:
        assert served_error(url, over) == (413, f"inputs[0]{cut}")
        answer = httpx.post(f"{url}/v1/predict", json={"task": TASK, "inputs": [{"text": fits}]}, timeout=60)
        assert answer.status_code == 200, answer.text
    err = one_line_error(capsys, "predict", run, "--inputs", inputs, "--output", output)
    assert (
        err
        == f"attempt predict: error: {inputs}, line 1{cut} 2 more input(s) are too long too: line(s) 3, 4."
    )
    assert not output.exists()
    write_inputs(inputs, fits, "poor")
    assert cli.main(["predict", str(run), "--inputs", str(inputs), "--output", str(output)]) == 0
    predictions = [json.loads(line) for line in output.read_text().splitlines()]
    assert [p["source"] for p in predictions] == [f"review: {fits}", "review: poor"]  # the whole text, read


def test_the_library_predict_refuses_a_too_long_input_too(run):
    from attempt.evaluation.evaluate import InputTooLong
    from attempt.evaluation.texts import predict_texts

    with pytest.raises(InputTooLong) as caught:
        predict_texts(run, ["poor", " ".join(["good"] * (LIMIT - 2))])
    assert str(caught.value) == (
        f"Input 2 (counted from 1, like the lines of a file) is {LIMIT + 1} tokens; the {TASK} run reads at most "
        f"{LIMIT} (its max_source_length), so the rest would be cut. {SHORTEN}"
    )


# ------------------------------------------------------------------ 4. an unreadable body, a route not served
SEND = 'Send {"task": "rte", "inputs": [{...}]}.'


def test_an_unreadable_body_is_a_422_and_a_route_not_served_a_4xx_in_the_documented_shape(run):
    deep = b'{"task": "x", "inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with serving(run) as url:
        post = lambda body: httpx.post(  # noqa: E731
            f"{url}/v1/predict", content=body, headers={"content-type": "application/json"}, timeout=60
        )
        not_utf8, too_deep = post(b'{"task": "\xff\xfe", "inputs": []}'), post(deep)
        no_route, no_method = httpx.get(f"{url}/v1/nothing"), httpx.get(f"{url}/v1/predict")
        openai_method = httpx.get(f"{url}/v1/completions")
        openai_deep = httpx.post(f"{url}/v1/completions", content=deep.replace(b'"task"', b'"model"'))
        health = httpx.get(f"{url}/health")
    assert (not_utf8.status_code, not_utf8.json()) == (
        422, {"error": f"Invalid request body (not UTF-8: invalid start byte at byte 10). {SEND}"}
    )  # fmt: skip
    assert (too_deep.status_code, too_deep.json()) == (
        422, {"error": f"Invalid request body (lists or objects nested too deep to parse). {SEND}"}
    )  # fmt: skip
    routes = "GET /openapi.json lists the routes and their methods."
    assert (no_route.status_code, no_route.json()) == (
        404,
        {"error": f"Not Found: GET /v1/nothing. {routes}"},
    )
    assert (no_method.status_code, no_method.json()) == (
        405, {"error": f"Method Not Allowed: GET /v1/predict. {routes}"}
    )  # fmt: skip
    assert no_method.headers["allow"] == "POST"
    assert (openai_method.status_code, openai_method.json()) == (405, {"error": {
        "message": f"Method Not Allowed: GET /v1/completions. {routes}", "type": "invalid_request_error",
        "param": None, "code": None}})  # fmt: skip
    assert (openai_deep.status_code, openai_deep.json()) == (400, {"error": {
        "message": "The body has lists or objects nested too deep to parse: send a completion request as a JSON "
        "object.", "type": "invalid_request_error", "param": None, "code": None}})  # fmt: skip
    assert health.status_code == 200  # and the server still answers


# ------------------------------------------------------------------------ 5. a damaged config on resume
def test_resuming_with_a_damaged_train_config_is_one_line_and_the_fix_works(
    run, tmp_path, capsys, monkeypatch
):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)  # beside its task file, where the run recorded it
    shutil.copytree(run.parent / "task", tmp_path / "task")
    config = copy / "train_config.json"
    config.write_text('{"mode": "prompt_tuning", "tasks": ["product_rev')
    before = config.read_bytes()

    def no_backbone(*args, **kwargs):
        raise AssertionError("the backbone was loaded before the saved config was checked")

    monkeypatch.setattr("attempt.backbones.resolve.load_backbone", no_backbone)
    err = one_line_error(capsys, *train_argv(copy, run.parent / "tiny-t5"))
    fix = f"Delete it and run the same command again: the run resumes from {copy / 'checkpoint'} and rewrites it."
    assert err == (
        f"attempt train: error: {config} is damaged or not what it should be (Unterminated string starting at: "
        f"line 1 column 37 (char 36)). {fix}"
    )
    assert config.read_bytes() == before  # left as it was, for you to look at
    config.write_text(json.dumps({**json.loads((run / "train_config.json").read_text()), "bogus": 1}))
    err = one_line_error(capsys, *train_argv(copy, run.parent / "tiny-t5"))
    assert err.startswith(f"attempt train: error: {config}: Unknown TrainConfig key(s): bogus. Valid keys: ")
    assert err.endswith(f". {fix}")
    monkeypatch.undo()
    config.unlink()  # the fix
    assert cli.main(train_argv(copy, run.parent / "tiny-t5")) == 0, capsys.readouterr().err
    assert json.loads(config.read_text()) == json.loads((run / "train_config.json").read_text())


def test_an_unknown_key_in_a_saved_config_names_the_file(run, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    config = copy / "train_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "bogus": 1}))
    for command in ("evaluate", "predict"):
        extra = ["--inputs", write_inputs(tmp_path / "in.jsonl", "poor"), "--output", tmp_path / "out.jsonl"]
        err = one_line_error(capsys, command, copy, *(extra if command == "predict" else []))
        assert err.startswith(
            f"attempt {command}: error: {config}: Unknown TrainConfig key(s): bogus. Valid keys: "
        )
        assert err.endswith(". Restore it: best/train_config.json is a copy of it.")
