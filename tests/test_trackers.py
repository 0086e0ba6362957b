"""report_to: the numbers of metrics.jsonl also reach TensorBoard and MLflow (a local file store) through
Accelerate's trackers; a tracker that is not installed is an error before training."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from attempt.runs.metrics_log import flatten_record
from attempt.testing import build_backbone, build_tokenizer
from attempt.training.loop import train
from test_train import make_config


def expected_scalars(run: Path) -> dict[str, dict[int, float]]:
    """{tag: {step: value}} of every numeric value in metrics.jsonl, as the trackers should have them."""
    tags: dict[str, dict[int, float]] = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        for name, value in flatten_record(record).items():
            if name != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                tags.setdefault(f"{record['type']}/{name}", {})[record["step"]] = float(value)
    return tags


@pytest.mark.slow
@pytest.mark.data
def test_tensorboard_and_mlflow_get_the_metrics_of_metrics_jsonl(tmp_path, data_dir, monkeypatch):
    pytest.importorskip("tensorboard")
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "mlruns").as_uri())  # a local file store:
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 wants it said (it prefers sqlite)
    config = make_config(tmp_path, data_dir, max_steps=4, eval_every=2, report_to=("tensorboard", "mlflow"))
    train(config, backbone=build_backbone("seq2seq"), tokenizer=build_tokenizer("seq2seq"), progress=False)
    run = Path(config.output_dir)
    expected = expected_scalars(run)
    assert {"train/loss", "eval/metrics/rte/accuracy", "eval/metrics/average", "eval/best_step"} <= set(
        expected
    )

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "trackers" / "attempt")).Reload()
    board = {tag: {e.step: e.value for e in events.Scalars(tag)} for tag in events.Tags()["scalars"]}
    assert set(board) == set(expected)
    for tag, values in expected.items():
        assert board[tag].keys() == values.keys(), tag
        assert all(math.isclose(board[tag][s], v, rel_tol=1e-6) for s, v in values.items()), (
            tag
        )  # float32 in TB

    client = mlflow.tracking.MlflowClient()
    [logged] = client.search_runs([client.get_experiment_by_name("attempt").experiment_id])
    assert logged.info.run_name == "run" and logged.data.params["mode"] == "prompt_tuning"
    assert set(logged.data.metrics) == set(expected)
    for tag, values in expected.items():
        assert {m.step: m.value for m in client.get_metric_history(logged.info.run_id, tag)} == values, tag


def test_a_tracker_that_is_not_installed_is_an_error_before_training(tmp_path, monkeypatch):
    from attempt.training.devices import check_trackers

    with pytest.raises(ValueError, match=r"report_to wandb: not available here .*\(pip install wandb\)"):
        check_trackers(("tensorboard", "wandb"), ["tensorboard"])
    check_trackers(("all",), [])  # "all": whatever is installed


def test_report_to_does_not_stop_a_run_from_resuming(tmp_path):
    from attempt.config import TrainConfig
    from attempt.runs.state import _check_same_run

    saved = TrainConfig().to_dict()
    del saved["report_to"]  # a checkpoint written before report_to existed
    _check_same_run(saved, TrainConfig(report_to=("tensorboard",)).to_dict(), tmp_path)


@pytest.mark.data
def test_a_run_that_reports_to_a_tracker_leaves_its_callers_process_group_alone(
    tmp_path, data_dir, process_group
):
    """Finishing the trackers must not end the processes' group: Accelerate's end_training does both, and on
    the main process alone (the only one that logs) it would leave the others' collectives hanging, and a
    caller training twice in one script without a group."""
    pytest.importorskip("tensorboard")
    config = make_config(tmp_path, data_dir, report_to=("tensorboard",))
    train(config, backbone=build_backbone("seq2seq"), tokenizer=build_tokenizer("seq2seq"), progress=False)
    assert process_group.is_initialized()
    assert list((Path(config.output_dir) / "trackers" / "attempt").glob("events.out.tfevents.*"))
