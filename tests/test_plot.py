"""attempt.evaluation.plots: the attention heatmap and the training curves."""

from __future__ import annotations

import json
import math

import pytest

pytest.importorskip("matplotlib")

from attempt.evaluation.plots import attention_heatmap, attention_matrix, curve_series, training_curves  # noqa: E402

ATTENTION = {
    "rte": {"mnli": 0.5, "qnli": 0.2, "sst2": 0.1, "target": 0.2},
    "cb": {"mnli": 0.6, "qnli": 0.1, "sst2": 0.05, "target": 0.25},
    "boolq": {"mnli": 0.1, "qnli": 0.3, "target": 0.6},
}


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_attention_matrix_layout():
    rows, cols, values = attention_matrix(ATTENTION)
    assert rows == ["rte", "cb", "boolq"]
    assert cols == ["mnli", "qnli", "sst2", "target"]  # target last
    assert math.isnan(values[2][2]) and values[0][3] == 0.2


def test_attention_heatmap_png(tmp_path):
    path, fig = attention_heatmap(
        ATTENTION, tmp_path / "sub" / "attn.png", title="ATTEMPT", dpi=50, return_figure=True
    )
    assert path.is_file() and path.stat().st_size > 1000
    width, height = _png_size(path)
    assert abs(width - 50 * (1.1 * 4 + 2.5)) <= 2 and abs(height - 50 * (0.6 * 3 + 1.5)) <= 2
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["mnli", "qnli", "sst2", "target"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["rte", "cb", "boolq"]
    assert len(fig.axes) == 2  # the heatmap and its colour bar
    assert {t.get_text() for t in ax.texts} >= {"0.50", "0.25", "0.60"}
    assert not list(tmp_path.joinpath("sub").glob(".*tmp"))  # no temporary left behind


def test_attention_heatmap_errors(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        attention_heatmap({}, tmp_path / "a.png")
    with pytest.raises(ValueError, match="empty"):
        attention_heatmap({"rte": {}}, tmp_path / "a.png")
    with pytest.raises(ValueError, match="png"):
        attention_heatmap(ATTENTION, tmp_path / "a.pdf")


RECORDS = [
    {"step": 10, "loss": 0.9, "lr": 0.3, "epoch": 0.1},
    {"step": 20, "loss": 0.7, "lr": 0.29, "note": "text is ignored"},
    {"step": 20, "split": "validation", "average": 61.0, "rte/accuracy": 61.0, "cb/f1": 55.0},
    {"step": 30, "loss": 0.5, "lr": 0.28},
    {"step": 40, "split": "validation", "average": 66.0, "rte/accuracy": 66.0, "cb/f1": 60.0},
    {"event": "start"},
]


def test_curve_series():
    train, valid = curve_series(RECORDS)
    assert train["loss"] == [(10, 0.9), (20, 0.7), (30, 0.5)] and "epoch" not in train
    assert valid["average"] == [(20, 61.0), (40, 66.0)] and "cb/f1" in valid


def test_training_curves_from_jsonl(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n\n")
    path, fig = training_curves(metrics, tmp_path / "curves.png", dpi=40, return_figure=True)
    assert path.stat().st_size > 1000
    assert [ax.get_ylabel() for ax in fig.axes] == ["training loss", "lr", "validation metric"]
    width, height = _png_size(path)
    assert abs(width - 40 * 7) <= 2 and abs(height - 40 * (2.6 * 3 + 0.6)) <= 2
    labels = [line.get_label() for line in fig.axes[-1].get_lines()]
    assert labels[0] == "average" and "rte/accuracy" in labels


def test_training_curves_tolerant_and_errors(tmp_path):
    only_train = training_curves([{"step": 1, "loss": 1.0}, {"step": 2, "loss": 0.5}], tmp_path / "t.png")
    assert only_train.is_file()
    only_eval = training_curves([{"step": 5, "split": "validation", "average": 70}], tmp_path / "e.png")
    assert only_eval.is_file()
    with pytest.raises(ValueError, match="Nothing to plot"):
        training_curves([], tmp_path / "x.png")
    with pytest.raises(ValueError, match="Nothing to plot"):
        training_curves([{"event": "start"}], tmp_path / "x.png")
    with pytest.raises(FileNotFoundError):
        training_curves(tmp_path / "missing.jsonl", tmp_path / "x.png")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"step": 1, "loss": 1}\nnot json\n{"step": 2, "loss": 0.5}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl line 2 is not a JSON record \('not json'\)"):
        training_curves(bad, tmp_path / "x.png")


def test_plots_drop_a_torn_last_line_as_the_metrics_log_does(tmp_path):
    from attempt.evaluation.plots import curve_series, read_records

    path = tmp_path / "metrics.jsonl"  # the run was killed while writing its last line
    path.write_text(
        '{"step": 1, "type": "train", "loss": 0.7}\n{"step": 2, "type": "train", "loss": 0.5}\n{"step": 3, "ty'
    )
    with pytest.warns(UserWarning, match="dropped its torn last line"):
        records = read_records(path)
    assert records == [{"step": 1, "type": "train", "loss": 0.7}, {"step": 2, "type": "train", "loss": 0.5}]
    assert curve_series(records)[0] == {"loss": [(1.0, 0.7), (2.0, 0.5)]}
    with pytest.warns(UserWarning, match="dropped its torn last line"):
        assert training_curves(path, tmp_path / "curves.png") == tmp_path / "curves.png"


def test_training_curves_read_the_nested_metrics_train_writes(tmp_path):
    from attempt.evaluation.plots import curve_series, read_records

    path = tmp_path / "metrics.jsonl"
    path.write_text(
        '{"step": 1, "type": "train", "loss": 0.7, "lr": {"prompt": 0.3}}\n'
        '{"step": 5, "type": "eval", "split": "validation", "metrics": {"rte": {"accuracy": 60.0}, "average": 60.0}, "best_step": 5}\n'
        '{"step": 9, "type": "eval", "split": "test", "metrics": {"rte": {"accuracy": 55.0}, "average": 55.0}}\n'
    )
    train, valid = curve_series(read_records(path))
    assert train == {"loss": [(1.0, 0.7)], "lr/prompt": [(1.0, 0.3)]}
    assert valid == {"rte/accuracy": [(5.0, 60.0)], "average": [(5.0, 60.0)]}


def test_example_attention_heatmap_one_row_per_example(tmp_path):
    from attempt.evaluation.plots import example_attention_heatmap

    records = [
        {
            "index": i,
            "reference": "yes" if i % 2 else "no",
            "attention_weights": {"mnli": 0.1 * i, "sst2": 1 - 0.1 * i, "target": 0.0},
        }
        for i in range(5)
    ]
    path = example_attention_heatmap(records, tmp_path / "each.png", title="t")
    assert path.stat().st_size > 1000
    with pytest.raises(ValueError, match="No record has attention_weights"):
        example_attention_heatmap([{"index": 0}], tmp_path / "none.png")
