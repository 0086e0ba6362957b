"""Prompt libraries and runs on the Hugging Face Hub, offline, through the real `huggingface_hub` client.

Downloads go over HTTP to a small Hub on a local port (pytest-httpserver, named by HF_ENDPOINT: the repository
info, tree and file routes `snapshot_download` calls), and from the filled cache with HF_HUB_OFFLINE=1. Uploads
go through `HfApi` with its three network methods patched (create_repo, list_repo_files, create_commit: the
Hub's commit protocol is too large to stand up), recording the exact files and card sent; what a push sends is
then published on the local Hub, so push and pull meet in the middle.
"""

from __future__ import annotations

import hashlib
import json
import re
import types
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

huggingface_hub = pytest.importorskip("huggingface_hub")
pytest.importorskip("pytest_httpserver")
from huggingface_hub import HfApi, ModelCard, constants  # noqa: E402
from werkzeug.wrappers import Response  # noqa: E402

from attempt.cli import main  # noqa: E402
from attempt.config import TrainConfig  # noqa: E402
from attempt.modeling import AttemptModel  # noqa: E402
from attempt.prompts.hub import pull_library  # noqa: E402
from attempt.prompts.library import PromptLibrary, SourcePrompt  # noqa: E402
from attempt.runs.hub import run_files, run_folder  # noqa: E402
from attempt.serve import load_runs  # noqa: E402
from attempt.testing import build_backbone, build_tokenizer  # noqa: E402
from attempt.utils.hub import HubRepo, parse_location  # noqa: E402
from attempt.utils.reading import CorruptFile  # noqa: E402

SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"
LIBRARY_FILES = ["README.md", "mnli.json", "mnli.safetensors", "qnli.json", "qnli.safetensors"]


class FakeHub:
    """The Hub's read routes for model repositories held in memory: ``{repo_id: (commit, {path: bytes})}``."""

    def __init__(self) -> None:
        self.repos: dict[str, tuple[str, dict[str, bytes]]] = {}
        self.requests: list[str] = []

    def publish(self, repo_id: str, files: dict[str, bytes]) -> str:
        digest = hashlib.sha1(repo_id.encode())
        for path in sorted(files):
            digest.update(path.encode() + hashlib.sha256(files[path]).digest())
        self.repos[repo_id] = (digest.hexdigest(), dict(files))
        return digest.hexdigest()

    def __call__(self, request) -> Response:
        self.requests.append(f"{request.method} {request.path}")
        info = re.fullmatch(r"/api/models/([^/]+/[^/]+)/revision/(.+)", request.path)
        tree = re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([0-9a-f]{40})", request.path)
        resolve = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([0-9a-f]{40})/(.+)", request.path)
        match = info or tree or resolve
        if match is None or match.group(1) not in self.repos:
            return Response("Repository not found", status=404, headers={"X-Error-Code": "RepoNotFound"})
        commit, files = self.repos[match.group(1)]
        if info:
            body = {
                "id": match.group(1),
                "sha": commit,
                "siblings": [{"rfilename": p} for p in sorted(files)],
            }
            return Response(json.dumps(body), content_type="application/json")
        if tree:
            entries = [{"type": "file", "path": p, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                       for p, data in sorted(files.items())]  # fmt: skip
            return Response(json.dumps(entries), content_type="application/json")
        data = files[match.group(3)]
        headers = {"X-Repo-Commit": commit, "ETag": f'"{hashlib.sha256(data).hexdigest()}"'}
        return Response(data, headers=headers)  # the server sends no body to a HEAD


@pytest.fixture
def fake_hub(httpserver, tmp_path, monkeypatch) -> FakeHub:
    """The local Hub, named by HF_ENDPOINT; a fresh Hugging Face cache and attempt cache in tmp_path."""
    served = FakeHub()
    httpserver.expect_request(re.compile(".*")).respond_with_handler(served)
    monkeypatch.setenv("HF_ENDPOINT", httpserver.url_for("/").rstrip("/"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("ATTEMPT_CACHE", str(tmp_path / "attempt-cache"))
    monkeypatch.setenv("HF_TOKEN", "hf_test_token_not_sent_anywhere")
    return served


@pytest.fixture
def pushed(fake_hub, monkeypatch) -> list[dict]:
    """HfApi's network methods patched: each push is recorded (repo, private, files, message) and published."""
    records: list[dict] = []

    def create_repo(self, repo_id, *, private=None, exist_ok=False, **_):
        records.append({"create_repo": repo_id, "private": private, "exist_ok": exist_ok})
        return f"{self.endpoint}/{repo_id}"

    def list_repo_files(self, repo_id, **_):
        return [".gitattributes", *sorted(fake_hub.repos.get(repo_id, ("", {}))[1])]

    def create_commit(self, repo_id, operations, *, commit_message, **_):
        added = {
            op.path_in_repo: _content(op.path_or_fileobj)
            for op in operations
            if hasattr(op, "path_or_fileobj")
        }
        deleted = sorted(op.path_in_repo for op in operations if not hasattr(op, "path_or_fileobj"))
        records.append({"commit": repo_id, "files": added, "deleted": deleted, "message": commit_message})
        commit = fake_hub.publish(repo_id, added)
        return types.SimpleNamespace(commit_url=f"{self.endpoint}/{repo_id}/commit/{commit}")

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "list_repo_files", list_repo_files)
    monkeypatch.setattr(HfApi, "create_commit", create_commit)
    return records


def _content(value) -> bytes:
    return value if isinstance(value, bytes) else Path(value).read_bytes()


def _library(root: Path) -> PromptLibrary:
    library = PromptLibrary(root)
    for i, name in enumerate(("mnli", "qnli")):
        embeddings = torch.randn(4, 32, generator=torch.Generator().manual_seed(i))
        library.add(SourcePrompt(name, embeddings, task=name, backbone=SMOLLM2, score={"accuracy": 50.0 + i}))
    return library


def _card(text: str) -> dict:
    return ModelCard(text).data.to_dict()  # the Hub's own reading of the front matter


# ------------------------------------------------------------------------------------------- locations
def test_hub_locations_are_hf_names_or_plain_ids_where_no_local_folder_is(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert parse_location("hf://me/lib") == HubRepo("me/lib")
    assert parse_location("hf://me/lib@v1.0") == HubRepo("me/lib", "v1.0")
    assert parse_location("me/lib@refs/pr/1") == HubRepo("me/lib", "refs/pr/1")
    assert str(HubRepo("me/lib", "v1")) == "hf://me/lib@v1" and HubRepo("me/lib").name == "lib"
    assert parse_location("me/lib", plain_ids=False) is None  # a library folder about to be created
    assert parse_location(Path("me/lib")) is None and parse_location("lib") is None
    (tmp_path / "me" / "lib").mkdir(parents=True)
    assert parse_location("me/lib") is None  # the local folder wins
    assert parse_location("hf://me/lib") == HubRepo("me/lib")
    with pytest.raises(ValueError, match=r"'hf://lib' is not a Hub location: write hf://owner/name"):
        parse_location("hf://lib")


# ------------------------------------------------------------------------------------------- libraries
def test_a_pushed_then_pulled_library_gives_bit_identical_prompts(fake_hub, pushed, tmp_path, capsys):
    library = _library(tmp_path / "lib")
    assert main(["prompts", "push", str(library.root), "me/smol-prompts"]) == 0
    assert capsys.readouterr().out.startswith("Pushed ")
    assert pushed[0] == {"create_repo": "me/smol-prompts", "private": False, "exist_ok": True}
    sent = pushed[1]
    assert sent["commit"] == "me/smol-prompts" and sent["deleted"] == []
    assert sorted(sent["files"]) == LIBRARY_FILES
    assert sent["message"] == "attempt prompts push: mnli, qnli"
    for name in ("mnli", "qnli"):
        assert sent["files"][f"{name}.safetensors"] == (library.root / f"{name}.safetensors").read_bytes()
        assert json.loads(sent["files"][f"{name}.json"]) == library.get(name).metadata()
    card = _card(sent["files"]["README.md"].decode())
    assert card == {
        "library_name": "attempt-tuning", "base_model": [SMOLLM2], "datasets": ["nyu-mll/glue"],
        "metrics": ["accuracy"], "tags": ["attempt", "soft-prompt", "prompt-tuning", "peft", "prompt-library"],
    }  # fmt: skip
    assert "| `mnli` | mnli |" in sent["files"]["README.md"].decode()

    into = tmp_path / "pulled"
    assert main(["prompts", "pull", "hf://me/smol-prompts", "--into", str(into)]) == 0
    assert "Pulled 2 prompts (mnli, qnli) from hf://me/smol-prompts" in capsys.readouterr().out
    pulled = PromptLibrary(into)
    for name in ("mnli", "qnli"):
        assert torch.equal(pulled.get(name).embeddings, library.get(name).embeddings)
        assert load_file(str(into / f"{name}.safetensors")).keys() == {"prompt"}
        assert pulled.get(name).metadata() == library.get(name).metadata()
    assert any(r.startswith("GET /api/models/me/smol-prompts/revision/main") for r in fake_hub.requests)


def test_a_library_on_the_hub_is_read_in_place_and_never_written(fake_hub, pushed, tmp_path):
    library = _library(tmp_path / "lib")
    main(["prompts", "push", str(library.root), "me/lib"])
    remote = PromptLibrary("hf://me/lib")
    assert remote.names() == ["mnli", "qnli"]
    assert Path(constants.HF_HUB_CACHE) in remote.root.parents  # the downloaded snapshot
    assert torch.equal(remote.get("qnli").embeddings, library.get("qnli").embeddings)
    with pytest.raises(
        PermissionError, match=r"hf://me/lib is a library on the Hub \(read-only here\): pull it"
    ):
        remote.add(SourcePrompt("sst2", torch.zeros(4, 32)))
    with pytest.raises(PermissionError, match="read-only here"):
        remote.check_writable("sst2")


def test_a_tampered_library_download_is_refused_by_hash_and_nothing_is_written(fake_hub, tmp_path, capsys):
    library = _library(tmp_path / "lib")
    files = {p.name: p.read_bytes() for p in library.root.iterdir() if p.suffix in (".json", ".safetensors")}
    changed = library.get("qnli").embeddings.clone()
    changed[0, 0] += 1e-3
    save_file({"prompt": changed}, str(tmp_path / "changed.safetensors"))
    fake_hub.publish(
        "me/tampered", {**files, "qnli.safetensors": (tmp_path / "changed.safetensors").read_bytes()}
    )
    into = tmp_path / "pulled"
    assert main(["prompts", "pull", "me/tampered", "--into", str(into)]) == 2
    error = capsys.readouterr().err.splitlines()[-1]  # after the download's progress bar
    assert error.startswith(
        f"attempt prompts: error: Refused me/tampered (nothing was written to {into}): prompt 'qnli' fails its check: "
    )
    assert "does not match the hash recorded in" in error and error.endswith("Pull again, or push it again.")
    assert not into.exists()

    fake_hub.publish("me/unhashed", {**files, "mnli.json": json.dumps({"name": "mnli"}).encode()})
    with pytest.raises(
        CorruptFile, match=r"prompt 'mnli' has no mnli.json recording its hash, so it cannot be"
    ):
        pull_library("hf://me/unhashed", into)


def test_pulling_over_a_different_prompt_of_the_same_name_needs_overwrite(fake_hub, pushed, tmp_path):
    main(["prompts", "push", str(_library(tmp_path / "lib").root), "me/lib"])
    local = PromptLibrary(tmp_path / "mine")
    local.add(SourcePrompt("mnli", torch.ones(4, 32)))
    with pytest.raises(FileExistsError, match=r"already has different prompts named mnli; pull into another"):
        pull_library("hf://me/lib", local.root)
    assert torch.equal(local.get("mnli").embeddings, torch.ones(4, 32))
    assert pull_library("hf://me/lib", local.root, overwrite=True) == ["mnli", "qnli"]
    assert not torch.equal(local.get("mnli").embeddings, torch.ones(4, 32))


def test_a_second_push_removes_what_the_library_no_longer_has(fake_hub, pushed, tmp_path):
    library = _library(tmp_path / "lib")
    main(["prompts", "push", str(library.root), "me/lib"])
    library.remove("qnli")
    assert main(["prompts", "push", str(library.root), "me/lib", "--private", "--message", "drop qnli"]) == 0
    assert pushed[2] == {"create_repo": "me/lib", "private": True, "exist_ok": True}
    assert (sorted(pushed[3]["files"]), pushed[3]["deleted"]) == (
        ["README.md", "mnli.json", "mnli.safetensors"], ["qnli.json", "qnli.safetensors"]
    )  # fmt: skip
    assert pushed[3]["message"] == "drop qnli"
    assert PromptLibrary("hf://me/lib").names() == ["mnli"]


def test_offline_a_filled_cache_is_read_and_a_missing_repository_is_one_line(
    fake_hub, pushed, tmp_path, monkeypatch
):
    library = _library(tmp_path / "lib")
    main(["prompts", "push", str(library.root), "me/lib"])
    assert PromptLibrary("hf://me/lib").names() == ["mnli", "qnli"]  # downloads: the cache is filled
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    before = len(fake_hub.requests)
    offline = PromptLibrary("hf://me/lib")
    assert torch.equal(offline.get("mnli").embeddings, library.get("mnli").embeddings)
    assert len(fake_hub.requests) == before
    with pytest.raises(
        OSError, match=r"^hf://me/other is not in the local Hugging Face cache and the Hub cannot"
    ):
        PromptLibrary("hf://me/other")
    with pytest.raises(OSError, match=r"^No local folder me/other@v2\. hf://me/other@v2 is not in the local"):
        run_folder("me/other@v2")  # a plain id could have been a folder: the error says there is none


def test_refusals_before_anything_is_sent(fake_hub, pushed, tmp_path, capsys):
    library = _library(tmp_path / "lib")
    assert main(["prompts", "push", str(library.root), "me/lib@v1"]) == 2
    assert "a push goes to the repository's default branch; drop the @revision" in capsys.readouterr().err
    assert main(["prompts", "push", str(library.root), "just-a-name"]) == 2
    assert "is not a Hub repository id: write owner/name" in capsys.readouterr().err
    (library.root / "qnli.json").write_text("{not json")
    assert main(["prompts", "push", str(library.root), "me/lib"]) == 2
    assert "qnli.json" in capsys.readouterr().err
    assert main(["prompts", "pull", "me/missing", "--into", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err == (
        "attempt prompts: error: No local folder me/missing. No Hub repository 'me/missing', or it is private: "
        "check the name, or log in (`hf auth login`, or set HF_TOKEN).\n"
    )
    assert pushed == []


# ------------------------------------------------------------------------------------------------ runs
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, data_dir) -> Path:
    """A finished ATTEMPT run on rte over a tiny T5 (its best/ holds copies of its two source prompts)."""
    from attempt.training.loop import train

    root = tmp_path_factory.mktemp("hub-run")
    backbone = root / "tiny-seq2seq"
    build_backbone("seq2seq").save_pretrained(backbone)
    build_tokenizer("seq2seq").save_pretrained(backbone)
    library = PromptLibrary(root / "lib")
    for i, name in enumerate(("mnli", "qnli")):
        library.add(
            SourcePrompt(name, torch.randn(4, 32, generator=torch.Generator().manual_seed(i)), task=name)
        )
    config = TrainConfig(
        mode="attempt", backbone=str(backbone), library=str(library.root), output_dir=str(root / "attempt-rte"),
        data_dir=str(data_dir), tasks=("rte",), attempt={"prompt_length": 4, "bottleneck_size": 8}, max_steps=2,
        batch_size=4, eval_batch_size=8, learning_rate=0.3, eval_every=2, train_limit=16, eval_limit=8,
        max_source_length=32, max_target_length=8, seed=7,
    )  # fmt: skip
    train(config, progress=False)
    return Path(config.output_dir)


RUN_FILES = ["README.md", "attempt_config.json", "attempt_model.safetensors", "environment.json",
             "sources/mnli.json", "sources/mnli.safetensors", "sources/qnli.json", "sources/qnli.safetensors",
             "train_config.json"]  # fmt: skip


@pytest.mark.data
def test_a_pushed_then_pulled_run_gives_identical_weights_and_predictions(
    fake_hub, pushed, trained_run, tmp_path, capsys
):  # fmt: skip
    assert main(["push", str(trained_run), "me/attempt-rte"]) == 0
    sent = pushed[1]
    assert sorted(sent["files"]) == RUN_FILES and sent["message"] == "attempt push attempt-rte"
    best = trained_run / "best"
    for path in (
        "attempt_config.json",
        "attempt_model.safetensors",
        "environment.json",
        "sources/mnli.safetensors",
    ):
        assert sent["files"][path] == (best / path).read_bytes(), path  # as they are
    for name in ("mnli", "qnli"):
        assert json.loads(sent["files"][f"sources/{name}.json"]) == json.loads(
            (best / f"sources/{name}.json").read_text()
        )
    config = json.loads(
        sent["files"]["train_config.json"]
    )  # no path of this machine; the library is sources/
    assert config == {
        **json.loads((best / "train_config.json").read_text()),
        "data_dir": None,
        "library": "sources",
    }
    results = json.loads((trained_run / "results.json").read_text())
    card = sent["files"]["README.md"].decode()
    metadata = _card(card)
    assert metadata["library_name"] == "attempt-tuning" and "base_model" not in metadata  # a local backbone
    assert metadata["datasets"] == ["nyu-mll/glue"] and metadata["metrics"] == ["accuracy"]
    assert metadata["tags"] == ["attempt", "soft-prompt", "prompt-tuning", "peft"]  # the mode, attempt, once
    [entry] = metadata["model-index"]
    assert entry["name"] == "me/attempt-rte"
    assert entry["results"] == [{
        "task": {"type": "text-classification"},
        "dataset": {"name": "rte", "type": "nyu-mll/glue", "split": "test", "config": "rte"},
        "metrics": [{"type": "accuracy", "value": round(results["test"]["rte"]["accuracy"], 4), "name": "test accuracy"}],
    }]  # fmt: skip
    assert (
        "attempt predict hf://me/attempt-rte --inputs" in card and 'run_folder("hf://me/attempt-rte")' in card
    )

    backbone = build_backbone("seq2seq")
    local = AttemptModel.from_pretrained(backbone, best)
    remote = AttemptModel.from_pretrained(backbone, "hf://me/attempt-rte")
    assert local.trainable_state_dict().keys() == remote.trainable_state_dict().keys()
    for key, value in local.trainable_state_dict().items():
        assert torch.equal(value, remote.trainable_state_dict()[key]), key
    assert torch.equal(local.mixture.source_prompts, remote.mixture.source_prompts)

    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text('{"task": "rte", "sentence1": "the cat is happy .", "sentence2": "the cat is sad ."}\n'
                      '{"task": "rte", "sentence1": "a man is old", "sentence2": "a man is new"}\n')  # fmt: skip
    outputs = []
    for run in (str(trained_run), "hf://me/attempt-rte", "me/attempt-rte"):
        output = tmp_path / f"{len(outputs)}.jsonl"
        assert main(["predict", run, "--inputs", str(inputs), "--output", str(output)]) == 0
        outputs.append([json.loads(line) for line in output.read_text().splitlines()])
    assert outputs[0] == outputs[1] == outputs[2]
    folder = run_folder("hf://me/attempt-rte")
    assert folder.name == "attempt-rte" and (folder / "best" / "attempt_model.safetensors").is_file()
    assert load_runs(["hf://me/attempt-rte"]).runs[0].name == "attempt-rte"  # attempt serve takes it too
    capsys.readouterr()


@pytest.mark.data
def test_a_tampered_run_download_is_refused_by_hash(fake_hub, trained_run, tmp_path, capsys):
    files = {path: content if isinstance(content, bytes) else Path(content).read_bytes()
             for path, content in run_files(trained_run, "me/run").items()}  # fmt: skip
    state = load_file(str(trained_run / "best" / "attempt_model.safetensors"))
    key = sorted(state)[0]
    state[key] = state[key] + 1e-3
    save_file(state, str(tmp_path / "changed.safetensors"))
    fake_hub.publish(
        "me/run", {**files, "attempt_model.safetensors": (tmp_path / "changed.safetensors").read_bytes()}
    )
    with pytest.raises(CorruptFile, match="attempt_model.safetensors"):
        AttemptModel.from_pretrained(build_backbone("seq2seq"), "hf://me/run")
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text('{"task": "rte", "sentence1": "a", "sentence2": "b"}\n')
    assert (
        main(["predict", "hf://me/run", "--inputs", str(inputs), "--output", str(tmp_path / "out.jsonl")])
        == 2
    )
    assert "attempt_model.safetensors" in capsys.readouterr().err
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.data
def test_a_run_whose_sources_are_not_the_ones_it_recorded_is_not_pushed(
    fake_hub, pushed, trained_run, tmp_path
):
    import shutil

    copy = tmp_path / "attempt-rte"
    shutil.copytree(trained_run, copy)
    PromptLibrary(copy / "best" / "sources").add(
        SourcePrompt("mnli", torch.zeros(4, 32), task="mnli"), overwrite=True
    )
    with pytest.raises(ValueError, match=r"Source prompt 'mnli' in .* is not the one .* was trained with"):
        run_files(copy, "me/run")
    assert pushed == []


@pytest.mark.data
def test_a_library_on_the_hub_trains_and_evaluates_a_run(fake_hub, pushed, trained_run, tmp_path, capsys):
    from attempt.training.loop import train

    config = json.loads((trained_run / "train_config.json").read_text())
    library = PromptLibrary(trained_run / "best" / "sources")  # the run's two source prompts
    main(["prompts", "push", str(library.root), "me/lib"])
    fields = {
        **{k: config[k] for k in ("mode", "tasks", "attempt", "max_steps", "batch_size", "eval_batch_size",
                                  "learning_rate", "eval_every", "train_limit", "eval_limit", "max_source_length",
                                  "max_target_length", "seed")},
        "backbone": str(trained_run.parent / "tiny-seq2seq"), "data_dir": str((trained_run / config["data_dir"]).resolve()),
        "library": "hf://me/lib", "output_dir": str(tmp_path / "from-hub"),
    }  # fmt: skip
    train(TrainConfig(**fields), progress=False)
    best = tmp_path / "from-hub" / "best"
    for name in ("mnli", "qnli"):
        assert torch.equal(PromptLibrary(best / "sources").get(name).embeddings, library.get(name).embeddings)
    assert (
        main(
            [
                "evaluate",
                str(tmp_path / "from-hub"),
                "--library",
                "hf://me/lib",
                "--out",
                str(tmp_path / "ev"),
            ]
        )
        == 0
    )
    assert (
        json.loads((tmp_path / "ev" / "eval_test.json").read_text())
        == json.loads((tmp_path / "from-hub" / "results.json").read_text())["test"]
    )
    capsys.readouterr()
