"""The run folder's names live in one module (attempt.runs.layout): pinned here, and spelled nowhere else."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from attempt.runs import layout
from attempt.runs.layout import RunLayout

SRC = Path(layout.__file__).resolve().parents[1]  # src/attempt
# string literals that happen to equal a run folder name but are not one: (file, literal)
NOT_RUN_NAMES = {("evaluation/plots.py", "best")}  # matplotlib's legend location, loc="best"


def _layout_literals() -> dict[str, str]:
    """{constant: literal} of every module-level string constant layout.py spells."""
    tree = ast.parse(Path(layout.__file__).read_text())
    return {
        node.targets[0].id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    }


HOLE = "{}"  # what an f-string's replacement field reads as in `_string_literals`


def _patterns(literal: str) -> list[re.Pattern]:
    """How a spelled name shows in another module's string: a folder name as a whole literal or a path
    component; a file name as a word of any literal; a template with any word (or an f-string's field) for
    each of its fields."""
    if "." not in literal:
        name = re.escape(literal)
        return [re.compile(rf"^{name}$|(?<![\w.-]){name}/|/{name}(?![\w.-])")]
    hole = rf"(?:\w+|{re.escape(HOLE)})"
    body = hole.join(re.escape(part) for part in re.split(r"\{\w+\}", literal))
    return [re.compile(rf"(?<![\w.-]){body}(?![\w-])")]


def _string_literals(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string in `path` but docstrings (prose may name the files); an f-string is one
    text, each replacement field read as HOLE."""
    tree = ast.parse(path.read_text())
    skip = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    texts = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            skip.update(id(part) for part in node.values)
            text = "".join(part.value if isinstance(part, ast.Constant) else HOLE for part in node.values)
            texts.append((node.lineno, text))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            texts.append((node.lineno, node.value))
    return texts


def test_the_run_folder_names_are_pinned():
    assert _layout_literals() == {
        "CONFIG_FILE": "train_config.json",
        "METRICS_FILE": "metrics.jsonl",
        "PREVIOUS_METRICS_FILE": "metrics.previous-{number}.jsonl",
        "CHECKPOINT_DIR": "checkpoint",
        "BEST_DIR": "best",
        "TRACKERS_DIR": "trackers",
        "RESULTS_FILE": "results.json",
        "RESULTS_TABLE_FILE": "results.md",
        "PREDICTIONS_FILE": "{split}_predictions.jsonl",
        "ATTENTION_FILE": "attention.json",
        "EVAL_METRICS_FILE": "eval_{split}.json",
        "EVAL_PREDICTIONS_FILE": "eval_{split}_predictions.jsonl",
        "EVAL_ATTENTION_FILE": "eval_{split}_attention.json",
        "ATTENTION_PLOT_FILE": "attention.png",
        "CURVES_PLOT_FILE": "training_curves.png",
        "EXAMPLES_PLOT_FILE": "attention_examples.png",
        "COMPARISON_PLOT_FILE": "comparison.png",
        "ENVIRONMENT_FILE": "environment.json",
        "CARD_FILE": "README.md",
        "CHECKPOINT_WEIGHTS_FILE": "trainable.safetensors",
        "OPTIMIZER_FILE": "optimizer.pt",
        "SCHEDULER_FILE": "scheduler.pt",
        "RNG_FILE": "rng.pt",
        "STATE_FILE": "state.json",
        "MANIFEST_FILE": "manifest.json",
    }
    assert layout.LOCK_FILE == ".attempt.lock"
    assert layout.CHECKPOINT_FILES == (
        "trainable.safetensors", "optimizer.pt", "scheduler.pt", "rng.pt", "state.json", "train_config.json",
    )  # fmt: skip


def test_a_run_layout_gives_every_path_of_a_run_folder(tmp_path):
    run = RunLayout(tmp_path / "run")
    paths = {
        "config": run.config, "metrics": run.metrics, "previous": run.previous_metrics(2),
        "checkpoint": run.checkpoint, "best": run.best, "best_config": run.best_config,
        "best_sources": run.best_sources, "results": run.results, "test": run.predictions(),
        "validation": run.predictions("validation"), "attention": run.attention, "trackers": run.trackers,
        "lock": run.lock,
    }  # fmt: skip
    assert {key: path.relative_to(tmp_path / "run").as_posix() for key, path in paths.items()} == {
        "config": "train_config.json", "metrics": "metrics.jsonl", "previous": "metrics.previous-2.jsonl",
        "checkpoint": "checkpoint", "best": "best", "best_config": "best/train_config.json",
        "best_sources": "best/sources", "results": "results.json", "test": "test_predictions.jsonl",
        "validation": "validation_predictions.jsonl", "attention": "attention.json", "trackers": "trackers",
        "lock": ".attempt.lock",
    }  # fmt: skip
    assert RunLayout(str(tmp_path)).root == tmp_path  # a str is a Path too
    assert layout.eval_files("file") == (
        "eval_file.json",
        "eval_file_predictions.jsonl",
        "eval_file_attention.json",
    )


def test_no_module_but_the_layout_spells_a_run_folder_name():
    literals = _layout_literals()
    spelled = []
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC).as_posix()
        if relative == "runs/layout.py":
            continue
        for line, text in _string_literals(path):
            for constant, literal in literals.items():
                if (relative, text) in NOT_RUN_NAMES:
                    continue
                if any(pattern.search(text) for pattern in _patterns(literal)):
                    spelled.append(
                        f"{relative}:{line} spells {literal!r} (use attempt.runs.layout.{constant})"
                    )
    assert spelled == []


def test_the_name_check_sees_a_spelled_name():
    """The check above is not vacuous: each kind of spelling is caught, prose and other names are not."""
    literals = _layout_literals()

    def caught(text: str) -> list[str]:
        return sorted(c for c, lit in literals.items() if any(p.search(text) for p in _patterns(lit)))

    assert caught("train_config.json") == ["CONFIG_FILE"]
    assert caught("Restore best/train_config.json") == ["BEST_DIR", "CONFIG_FILE"]
    assert caught("best") == ["BEST_DIR"]
    assert caught("pass the test_predictions.jsonl") == ["PREDICTIONS_FILE"]
    assert caught(f"eval_{HOLE}_predictions.jsonl") == ["EVAL_PREDICTIONS_FILE"]
    assert caught(f"eval_{HOLE}.json") == ["EVAL_METRICS_FILE"]
    assert caught(f"{HOLE}/best") == ["BEST_DIR"]
    assert caught("the best model; the last good checkpoint; eval_batch_size; best_step") == []
    assert caught("attempt_config.json") == [] and caught("results.jsonl") == []
