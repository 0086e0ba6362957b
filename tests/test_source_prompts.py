"""benchmarks/source_prompts.py: the standard error, the learning curve reader and the report's verdicts."""

from __future__ import annotations

import json

import pytest

from benchmarks import source_prompts as source_prompts_benchmark


@pytest.fixture(scope="module")
def sources():
    return source_prompts_benchmark


def test_standard_error_of_an_accuracy(sources):
    assert sources.standard_error(50.0, 100) == pytest.approx(5.0)
    assert sources.standard_error(90.0, 900) == pytest.approx(1.0)


def test_validation_curve_reads_only_validation_evaluations(sources, tmp_path):
    lines = [
        {"step": 10, "type": "train", "loss": 1.0},
        {"step": 100, "type": "eval", "split": "validation", "metrics": {"average": 60.0}},
        {"step": 100, "type": "eval", "split": "test", "metrics": {"average": 99.0}},
        {"step": 200, "type": "eval", "split": "validation", "metrics": {"average": 70.0}},
    ]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    assert sources.validation_curve(tmp_path) == [(100, 60.0), (200, 70.0)]


def test_report_says_which_bar_is_met(sources):
    row = {
        "task": "sst2",
        "steps": 600,
        "best_step": 500,
        "test": 88.0,
        "test_rows": 872,
        "two_standard_errors": 2.2,
        "zero_shot": 70.0,
        "step300": 87.0,
        "minilm_300_steps": 73.0,
        "meets_bar": True,
        "beats_own_step300": False,
    }
    stopped = {
        **row,
        "task": "mnli",
        "meets_bar": False,
        "steps": 4000,
        "stopped_at": 1700,
        "best_step": 1200,
    }
    text = sources.report([row, stopped], "smollm2")
    assert "| sst2 | 600 (600) | 500 | 88.0 (872) | 2.2 | 70.0 | 73.0 | met | 87.0 | no |" in text
    assert "| mnli | 1700 (4000) | 1200 |" in text and "NOT met" in text


def test_stash_and_restore_carry_an_unfinished_run_to_another_session(sources, tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "STATE", tmp_path / "state")
    run = tmp_path / "sources" / "slug" / "qnli"
    (run / "checkpoint").mkdir(parents=True)
    (run / "checkpoint" / "state.json").write_text('{"step": 100}')
    (run / "metrics.jsonl").write_text("{}\n")
    (run / "library").mkdir()  # not part of the resumable state
    assert sources.stash(run) == tmp_path / "state" / "slug" / "qnli"
    assert sources.restore(run) is False  # the run still has its own checkpoint
    import shutil

    shutil.rmtree(run)
    assert sources.restore(run) is True
    assert (run / "checkpoint" / "state.json").read_text() == '{"step": 100}' and (
        run / "metrics.jsonl"
    ).is_file()
    assert not (run / "library").exists()
    assert sources.stash(tmp_path / "nothing") is None
    (run / "results.json").write_text("{}")  # the run finished: its stash is stale, dropped, not refreshed
    assert sources.stash(run) is None and not (tmp_path / "state" / "slug" / "qnli").exists()


def test_the_squad_source_generates_its_answers_and_reads_passages_up_to_384_tokens(sources):
    squad = sources.run_config("squad", "smollm2", "smollm2-135m-instruct", None)
    assert (squad.eval_method, squad.max_source_length, squad.max_target_length) == ("generate", 384, 32)
    assert squad.early_stopping_patience == 5 and squad.max_steps == sources.STEPS["squad"]
    mnli = sources.run_config("mnli", "smollm2", "smollm2-135m-instruct", None)
    assert (mnli.eval_method, mnli.max_source_length, mnli.eval_every) == ("rank", 128, 100)  # unchanged


def test_the_report_gives_squad_f1_and_exact_match_and_says_record_is_not_trained(sources):
    row = {"task": "squad", "steps": 3000, "stopped_at": 1400, "best_step": 400, "test": 41.0, "test_rows": 700,
           "two_standard_errors": 3.7, "zero_shot": 12.0, "step300": 39.0, "minilm_300_steps": None,
           "meets_bar": True, "beats_own_step300": False,
           "test_metrics": {"squad": {"squad_f1": 50.0, "squad_exact_match": 32.0, "average": 41.0}}}  # fmt: skip
    text = sources.report([row], "smollm2")
    assert "| squad | 1400 (3000) | 400 | 41.0 (700) | 3.7 | 12.0 | – | met |" in text
    assert "squad: F1 50.0, exact match 32.0" in text
    assert "- record: not trained: the mirror has only 32 training rows" in text


def test_the_mirror_has_32_record_training_rows_as_the_report_says(sources, data_dir):
    rows = (data_dir / "aps" / "super_glue" / "record" / "train_fewglue32.jsonl").read_text().splitlines()
    assert len(rows) == 32 and not (data_dir / "aps" / "super_glue" / "record" / "train.jsonl").exists()
    assert "only 32 training rows" in sources.NOT_TRAINED["record"]


@pytest.mark.slow
def test_a_squad_source_trains_and_is_scored_by_generation_on_the_tiny_model(sources, tmp_path, data_dir):
    import dataclasses

    from attempt.testing import build_backbone, build_tokenizer
    from attempt.training.loop import train
    from benchmarks.common import data_overlay

    config = sources.run_config(
        "squad", "smollm2", "smollm2-135m-instruct", str(data_overlay(data_dir, tmp_path / "data"))
    )
    config = dataclasses.replace(config, backbone="tiny-llama", output_dir=str(tmp_path / "run"), max_steps=4,
                                 eval_every=2, eval_limit=4, test_limit=4, library=str(tmp_path / "run" / "library"),
                                 warmup_steps=0, max_target_length=4)  # fmt: skip
    train(config, model=build_backbone("causal"), tokenizer=build_tokenizer("causal"), progress=False)
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert set(results["test"]["squad"]) == {"squad_f1", "squad_exact_match", "average"}
    assert [step for step, _ in sources.validation_curve(tmp_path / "run")] == [2, 4]


def _row(task: str, test: float, meets_bar: bool, curve: list, best_step: int = 400) -> dict:
    return {"task": task, "steps": 4000, "stopped_at": 900, "best_step": best_step, "test": test,
            "test_rows": 1000, "two_standard_errors": 3.1, "zero_shot": 36.0, "step300": 35.0,
            "minilm_300_steps": 44.7, "meets_bar": meets_bar, "beats_own_step300": True, "curve": curve}  # fmt: skip


def test_a_run_is_shipped_only_when_it_meets_the_bar_and_beats_the_prompt_shipped_now(sources):
    shipped = _row("mnli", 55.2, True, [[100, 40.0], [1000, 58.5]], best_step=1000)
    assert sources.not_shipped_because(_row("mnli", 60.0, False, [(100, 41.0)]), shipped) == (
        "it does not meet the bar"
    )
    worse = _row("mnli", 50.0, True, [(100, 41.0)])
    assert "scores 55.2 on the same 1000 test rows" in sources.not_shipped_because(worse, shipped)
    assert sources.not_shipped_because(_row("mnli", 56.0, True, [(100, 41.0)]), shipped) is None
    assert (
        sources.not_shipped_because(_row("mnli", 50.0, True, [(100, 41.0)]), None) is None
    )  # nothing shipped
    same_run = _row("mnli", 55.2, True, [(100, 40.0), (1000, 58.5)], best_step=1000)  # its curve as tuples
    assert sources.is_shipped(same_run, shipped) and sources.not_shipped_because(same_run, shipped) is None


def test_a_run_that_is_not_shipped_is_reported_below_the_shipped_prompt_with_why(sources):
    shipped = _row("mnli", 55.2, True, [[100, 40.0], [1000, 58.5]], best_step=1000)
    retrain = _row("mnli", 42.6, False, [[100, 39.0], [400, 50.5]])
    rows = sources.merge_rows([dict(shipped)], [retrain], {"mnli": shipped})
    assert [(r["test"], r["shipped"], r["why_not"]) for r in rows] == [
        (55.2, True, None),
        (42.6, False, "it does not meet the bar"),
    ]
    assert sources.merge_rows(rows, [dict(retrain)], {"mnli": shipped}) == rows  # the same run is one row
    text = sources.report(rows, "smollm2")
    shipped_at, others_at = text.index("| mnli | 900 (4000) | 1000 | 55.2"), text.index("Runs not shipped")
    assert shipped_at < others_at < text.index("| mnli | 900 (4000) | 400 | 42.6")
    assert "- mnli, stopped at 900: it does not meet the bar." in text
    (qqp,) = sources.merge_rows([], [_row("qqp", 42.5, False, [[600, 72.3]])], {"qqp": None})
    assert (qqp["shipped"], qqp["why_not"]) == (False, "it does not meet the bar")  # the library has no qqp


def test_a_row_written_before_stopped_at_was_recorded_is_plotted_with_its_budget(
    sources, tmp_path, monkeypatch
):
    """The committed rows of the first sources (whole budget, no `stopped_at`) are plotted once a newer run
    is shipped above them (in session 15 the mnli report stopped on a KeyError there)."""
    old = _row("mnli", 55.2, True, [[100, 40.0], [1200, 58.5]], best_step=1000)
    del old["stopped_at"]
    old["steps"] = 1200
    new = _row("mnli", 61.5, True, [[100, 40.0], [3800, 60.2]], best_step=3800)
    rows = sources.merge_rows([old], [new], {"mnli": new})
    figures = []
    monkeypatch.setattr(sources, "save_figure", lambda figure, path, dpi: figures.append(figure))
    sources.plot_curves(rows, tmp_path / "curves.png")
    assert [ax.get_title() for ax in figures[0].axes] == ["mnli (not shipped, stopped 1200)", "mnli"]
    assert "- mnli, stopped at 1200: the prompt shipped now scores 61.5 on the same 1000 test rows." in (
        sources.report(rows, "smollm2")
    )


def test_a_run_that_ran_its_whole_budget_with_a_patience_is_reported_as_not_at_a_plateau(sources):
    budget = {**_row("mnli", 61.5, True, [[100, 40.0], [3800, 60.2]], best_step=3800), "stopped_at": 4000}
    patient = {**_row("qqp", 69.5, True, [[1400, 73.2]], best_step=1400), "stopped_at": 1900, "steps": 3000}
    fixed = {
        **_row("sst2", 87.4, True, [[500, 88.0]]),
        "steps": 600,
        "stopped_at": 600,
    }  # no patience: no claim
    for row in (budget, patient):
        row["patience"] = 5
    assert sources.budget_note([budget, patient, fixed]) == (
        " Ended by the step budget before the patience ran out (the prompt is the budget's best, not a measured "
        "plateau): mnli (4000)."
    )
    assert sources.budget_note([patient, fixed]) == ""


def test_the_qqp_test_split_note_gives_the_mirrors_label_counts(sources, data_dir):
    def duplicates(name: str) -> tuple[int, int]:
        lines = (data_dir / "nyu-mll" / "glue" / "qqp" / f"{name}.jsonl").read_text().splitlines()
        return sum(json.loads(line)["label"] == 1 for line in lines), len(lines)

    assert duplicates("validation_bimpm_proxy") == (9180, 18405)
    assert duplicates("train") == (12138, 32869)
    note = sources.TEST_SPLIT_NOTES["qqp"]
    assert "9,180 of 18,405" in note and "12,138 of 32,869" in note
    assert f"{100 * 9180 / 18405:.1f}%" in note and f"{100 * 12138 / 32869:.1f}%" in note
    train = (data_dir / "nyu-mll" / "glue" / "qqp" / "train.jsonl").read_text().splitlines()
    held_out = [json.loads(line)["label"] for line in train[8999:9999]]
    assert (sum(held_out), len(held_out)) == (377, 1000) and "37.7% duplicate" in note


def _fake_qqp_mirror(root):
    folder = root / "nyu-mll" / "glue" / "qqp"
    folder.mkdir(parents=True)
    lines = [
        json.dumps({"question1": f"q{i}", "question2": "é", "label": i % 2, "idx": i}) for i in range(10_500)
    ]
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "validation_bimpm_proxy.jsonl").write_text(lines[0] + "\n", encoding="utf-8")
    return folder, lines


def test_the_held_out_overlay_tests_qqp_on_training_rows_8999_to_9998_and_trains_on_the_rest(tmp_path):
    from benchmarks.common import data_overlay

    mirror, lines = _fake_qqp_mirror(tmp_path / "mirror")
    before = {p.name: p.read_bytes() for p in mirror.iterdir()}
    qqp = data_overlay(tmp_path / "mirror", tmp_path / "overlay", held_out=True) / "nyu-mll" / "glue" / "qqp"
    validation = (qqp / "validation.jsonl").read_text(encoding="utf-8").splitlines()
    train = (qqp / "train.jsonl").read_text(encoding="utf-8").splitlines()
    assert validation == lines[8999:9999] and train == lines[:8999] + lines[9999:]
    assert not (qqp / "train.jsonl").is_symlink()
    assert {p.name: p.read_bytes() for p in mirror.iterdir()} == before  # the mirror is untouched
    data_overlay(
        tmp_path / "mirror", tmp_path / "overlay"
    )  # the same folder without held_out: the proxy again
    assert (qqp / "validation.jsonl").resolve() == (mirror / "validation_bimpm_proxy.jsonl").resolve()
    assert (qqp / "train.jsonl").resolve() == (mirror / "train.jsonl").resolve()


def test_the_source_prompts_and_the_main_table_read_qqp_with_held_out_test_rows(sources, tmp_path):
    from attempt.data.splits import paper_splits
    from benchmarks import main_table

    mirror, lines = _fake_qqp_mirror(tmp_path / "mirror")
    table = main_table.MainTable(main_table.Options(tiny=True), tmp_path / "out", tmp_path / "mirror")
    for folder in (table.data_dir, sources.data_folder(tmp_path / "mirror", tmp_path / "sources-data")):
        splits = paper_splits("qqp", folder, seed=0)
        assert [row["idx"] for row in splits["test"]] == list(range(8999, 9999))
        assert not {row["idx"] for row in splits["train"] + splits["validation"]} & set(range(8999, 9999))
    assert "qqp" in sources.NO_EARLIER  # the MiniLM prompt's score was on the proxy rows


def test_two_builders_of_one_data_overlay_take_turns_so_neither_fails_on_a_link_the_other_made(tmp_path):
    import threading

    from filelock import FileLock

    from benchmarks.common import data_overlay

    mirror, _ = _fake_qqp_mirror(tmp_path / "mirror")
    overlay = tmp_path / "overlay"
    with FileLock(tmp_path / ".overlay.lock"):  # another job building the same overlay
        builder = threading.Thread(target=data_overlay, args=(mirror.parents[2], overlay, True))
        builder.start()
        builder.join(timeout=1.0)
        assert builder.is_alive() and not overlay.exists()  # it waits for its turn
    builder.join(timeout=30)
    assert not builder.is_alive()
    assert (overlay / "nyu-mll" / "glue" / "qqp" / "validation.jsonl").is_file()
    data_overlay(mirror.parents[2], overlay, held_out=True)  # a second builder finds it made: no error
