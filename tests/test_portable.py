"""Portable run folders: paths saved relative to the run folder, source prompts copied beside the model,
versions and a model card; a run folder moved away from its library still evaluates and predicts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from attempt.cli import main
from attempt.config import AttemptConfig, TrainConfig
from attempt.modeling import AttemptModel
from attempt.prompts.library import PromptLibrary, SourcePrompt
from attempt.runs import build
from attempt.runs.portable import run_config, saved_config
from attempt.testing import build_backbone, build_tokenizer


def sources(m: int = 4, d: int = 32) -> list[SourcePrompt]:
    torch.manual_seed(3)
    return [SourcePrompt(name, torch.randn(m, d), task=name) for name in ("mnli", "qnli")]


def test_saved_paths_are_relative_to_the_run_folder_and_resolve_where_it_is_now(tmp_path):
    (tmp_path / "data").mkdir()
    config = TrainConfig(
        output_dir=str(tmp_path / "runs" / "a"),
        library=str(tmp_path / "lib"),
        data_dir=str(tmp_path / "data"),
    )
    saved = saved_config(config)
    assert (saved["output_dir"], saved["library"], saved["data_dir"]) == (".", "../../lib", "../../data")
    assert run_config(saved, tmp_path / "runs" / "a") == config
    moved = tmp_path / "elsewhere" / "x" / "b"  # library and data did not move along: only the run folder did
    with pytest.warns(UserWarning, match="not there; reading ATTEMPT_DATA_DIR or the Hub"):
        again = run_config(saved, moved)
    assert (again.output_dir, again.library, again.data_dir) == (
        str(moved),
        str(tmp_path / "elsewhere" / "lib"),
        None,
    )


def test_configs_saved_before_relative_paths_read_back_unchanged(tmp_path):
    old = {**TrainConfig().to_dict(), "output_dir": "runs/x", "library": "/abs/prompts", "data_dir": None}
    config = run_config(old, tmp_path / "x")
    assert (config.library, config.output_dir) == ("/abs/prompts", "runs/x")


def _model(prompts: list[SourcePrompt]) -> AttemptModel:
    backbone = build_backbone("seq2seq")
    return AttemptModel.from_backbone(
        backbone, prompts, AttemptConfig(prompt_length=4, bottleneck_size=8, tasks=("rte",))
    )


def test_include_sources_copies_the_prompts_so_the_folder_alone_loads(tmp_path):
    model = _model(sources()).eval()
    model.save_pretrained(tmp_path / "plain")
    assert sorted(p.name for p in (tmp_path / "plain").iterdir()) == [
        "attempt_config.json",
        "attempt_model.safetensors",
    ]
    model.save_pretrained(tmp_path / "m", include_sources=True)
    files = sorted(str(p.relative_to(tmp_path / "m")) for p in (tmp_path / "m").rglob("*") if p.is_file())
    assert files == ["attempt_config.json", "attempt_model.safetensors", "sources/mnli.json", "sources/mnli.safetensors",
                     "sources/qnli.json", "sources/qnli.safetensors"]  # fmt: skip
    copies = PromptLibrary(tmp_path / "m" / "sources").load()
    assert [(p.name, p.hash) for p in copies] == [(s.name, s.hash) for s in sources()]

    loaded = AttemptModel.from_pretrained(
        build_backbone("seq2seq"), tmp_path / "m"
    ).eval()  # no library given
    batch = build_tokenizer("seq2seq")(["the cat is happy ."], return_tensors="pt")
    labels = build_tokenizer("seq2seq")(["entailment"], return_tensors="pt")["input_ids"]
    task_ids = torch.tensor([0])
    with torch.no_grad():
        expected, got = (m(**batch, labels=labels, task_ids=task_ids) for m in (model, loaded))
    assert torch.equal(expected.logits, got.logits) and torch.equal(
        expected.attention_weights, got.attention_weights
    )
    with pytest.raises(ValueError, match="was trained with source prompts"):
        AttemptModel.from_pretrained(build_backbone("seq2seq"), tmp_path / "plain")


def test_a_changed_copy_of_a_source_prompt_is_refused(tmp_path):
    _model(sources()).save_pretrained(tmp_path / "m", include_sources=True)
    changed = SourcePrompt("mnli", torch.zeros(4, 32), task="mnli")
    PromptLibrary(tmp_path / "m" / "sources").add(changed, overwrite=True)
    with pytest.raises(ValueError, match="'mnli' differs from the one"):
        AttemptModel.from_pretrained(build_backbone("seq2seq"), tmp_path / "m")


def test_a_model_whose_prompts_changed_dtype_cannot_copy_them(tmp_path):
    model = _model(sources())
    model.mixture.source_prompts = model.mixture.source_prompts.half().float()
    with pytest.raises(ValueError, match="no longer matches its recorded hash"):
        model.save_pretrained(tmp_path / "m", include_sources=True)
    assert not (tmp_path / "m").exists()  # the atomic write left nothing behind


@pytest.mark.slow
@pytest.mark.data
def test_a_moved_run_folder_evaluates_and_predicts_without_its_library(
    tmp_path, data_dir, capsys, monkeypatch
):
    backbone = tmp_path / "tiny-t5"
    build_backbone("seq2seq").save_pretrained(backbone)
    build_tokenizer("seq2seq").save_pretrained(backbone)
    library = PromptLibrary(tmp_path / "lib")
    for prompt in sources():
        library.add(prompt)
    argv = ["train", "--tasks", "rte", "--backbone", str(backbone), "--data-dir", str(data_dir), "--library",
            str(library.root), "--output-dir", str(tmp_path / "runs" / "rte"), "--max-steps", "2", "--batch-size", "4",
            "--eval-every", "2", "--train-limit", "16", "--eval-limit", "8", "--attempt.prompt-length", "4", "--quiet"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    run = tmp_path / "runs" / "rte"
    for folder, up in (
        (run, "."),
        (run / "best", ".."),
        (run / "checkpoint", ".."),
    ):  # relative to the file's folder
        saved = json.loads((folder / "train_config.json").read_text())
        assert (saved["output_dir"], saved["library"]) == (up, "../../lib" if up == "." else "../../../lib")
        assert (folder / saved["data_dir"]).resolve() == Path(data_dir).resolve()
        assert not Path(saved["library"]).is_absolute() and not Path(saved["data_dir"]).is_absolute()
    environment = json.loads((run / "best" / "environment.json").read_text())
    assert set(environment["versions"]) == {"attempt", "torch", "transformers", "accelerate", "python"}
    assert environment["versions"]["torch"] == torch.__version__
    assert environment["backbone"]["name"] == str(backbone) and environment["backbone"]["model_type"] == "t5"
    card = (run / "best" / "README.md").read_text()
    for text in ("library_name: attempt", "# attempt on rte", "ATTEMPT: an attentional mixture", "`mnli` (task mnli",
                 "| test | metric | value |", "load_run(\"RUN_DIR\")"):  # fmt: skip
        assert text in card, text

    moved = tmp_path / "elsewhere" / "deeper" / "rte"
    moved.parent.mkdir(parents=True)
    shutil.move(run, moved)
    shutil.rmtree(library.root)  # the run folder alone
    reads, read = [], build.read_run_config  # predict and evaluate each read the run's config once, not twice
    monkeypatch.setattr(
        build, "read_run_config", lambda run_dir: reads.append(Path(run_dir)) or read(run_dir)
    )
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text('{"task": "rte", "sentence1": "the cat is happy .", "sentence2": "the cat is sad ."}\n')
    code = main(["predict", str(moved), "--inputs", str(inputs), "--output", str(tmp_path / "pred.jsonl")])
    assert code == 0, capsys.readouterr().err
    [prediction] = [json.loads(line) for line in (tmp_path / "pred.jsonl").read_text().splitlines()]
    assert set(prediction["attention_weights"]) == {"mnli", "qnli", "target"}
    assert reads == [moved]
    code = main(
        [
            "evaluate",
            str(moved),
            "--split",
            "validation",
            "--data-dir",
            str(data_dir),
            "--out",
            str(tmp_path / "ev"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert reads == [moved, moved]
    results = json.loads((moved / "results.json").read_text())
    assert json.loads((tmp_path / "ev" / "eval_validation.json").read_text()) == results["validation"]
