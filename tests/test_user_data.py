"""Your own data files at their edges: encodings, values that are not text, labels out of range, rows that do
not fit the header, and errors that name the file line (counted from 1, as editors show it)."""

from __future__ import annotations

import json
import types
from pathlib import Path

import pytest

from attempt.cli import main
from attempt.data.sources import DataError, load_split, load_user_file
from attempt.evaluation.evaluate import predict


def _jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


# ----------------------------------------------------------------------------------------------- bytes
def test_a_utf8_bom_csv_from_excel_reads(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("sentence1,sentence2,label\nA café.,A bar.,entailment\n".encode("utf-8-sig"))
    assert load_user_file(path, "rte") == [{"sentence1": "A café.", "sentence2": "A bar.", "label": 0}]


@pytest.mark.parametrize("name", ["latin1.csv", "latin1.jsonl"])
def test_bytes_that_are_not_utf8_name_the_file_and_line(tmp_path, name):
    path = tmp_path / name
    good, bad = (
        ("a,b,0\n", "caf\xe9,d,1\n")
        if name.endswith(".csv")
        else (
            '{"sentence1": "a", "sentence2": "b", "label": 0}\n',
            '{"sentence1": "caf\xe9", "sentence2": "d", "label": 1}\n',
        )
    )
    header = "sentence1,sentence2,label\n" if name.endswith(".csv") else ""
    path.write_bytes((header + good + bad).encode("latin-1"))
    line = 3 if name.endswith(".csv") else 2
    with pytest.raises(DataError, match=rf"{name}, line {line}: not UTF-8 text \(byte 0xe9 at byte \d+ of the line\)"
                       r"\. Save the file as UTF-8"):  # fmt: skip
        load_user_file(path, "rte")


# ------------------------------------------------------------------------------------------ text fields
@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, r"null"),
        (12345, r"a number \(12345\)"),
        (["x"], r"a list \(\['x'\]\)"),
        ({"a": 1}, "an object"),
        (True, r"true"),
    ],
)
def test_text_fields_must_be_text(tmp_path, value, shown):
    path = _jsonl(tmp_path / "rows.jsonl", [{"sentence1": "a", "sentence2": "b", "label": 0},
                                            {"sentence1": value, "sentence2": "b", "label": 1}])  # fmt: skip
    with pytest.raises(
        DataError, match=rf"rows\.jsonl, line 2, field 'sentence1': expected text, got {shown}"
    ):
        load_user_file(path, "rte")


def test_record_entities_are_a_list_of_strings(tmp_path):
    row = {"passage": "p", "query": "q @placeholder", "entities": ["A", "B"], "answers": ["A"]}
    assert load_user_file(_jsonl(tmp_path / "ok.jsonl", [row]), "record")[0]["entities"] == ["A", "B"]
    path = _jsonl(tmp_path / "bad.jsonl", [{**row, "entities": "A, B"}])
    with pytest.raises(DataError, match=r"line 1, field 'entities': expected a list of strings, got 'A, B'"):
        load_user_file(path, "record")


# --------------------------------------------------------------------------------------------- labels
@pytest.mark.parametrize(("label", "message"), [
    ("99", r"label 99\.0 is outside the score range 0\.0\.\.5\.0"),
    ("-1", r"label -1\.0 is outside the score range 0\.0\.\.5\.0"),
    ("abc", r"label 'abc' is not a number"),
])  # fmt: skip
def test_stsb_labels_are_scores_in_range(tmp_path, label, message):
    path = tmp_path / "stsb.csv"
    path.write_text(f"sentence1,sentence2,label\na,b,4.2\nc,d,{label}\n")
    with pytest.raises(DataError, match=rf"stsb\.csv, line 3, field 'label': .*{message}"):
        load_user_file(path, "stsb")


def test_an_stsb_mirror_label_out_of_range_is_refused(tmp_path):
    _jsonl(
        tmp_path / "nyu-mll/glue/stsb/validation.jsonl", [{"sentence1": "a", "sentence2": "b", "label": 9.5}]
    )
    with pytest.raises(DataError, match=r"validation\.jsonl, line 1, field 'label'.*outside the score range"):
        load_split("stsb", "validation", tmp_path)


def test_malformed_squad_answers_name_the_line(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_text('question,context,answers\nq,c,x\nq,c,"[""x"", "\n')
    with pytest.raises(DataError, match=r"qa\.csv, line 3, field 'answers': not a JSON list of answers"):
        load_user_file(path, "squad")
    path = _jsonl(tmp_path / "qa.jsonl", [{"question": "q", "context": "c", "answers": {"txt": ["x"]}}])
    with pytest.raises(DataError, match=r"qa\.jsonl, line 1, field 'answers': .*has no 'text'"):
        load_user_file(path, "squad")


# ---------------------------------------------------------------------------------------- CSV shape
@pytest.mark.parametrize(("row", "count"), [("a,b,0,extra", 4), ("a,b", 2)])
def test_a_csv_row_that_does_not_fit_the_header_is_refused(tmp_path, row, count):
    path = tmp_path / "shape.csv"
    path.write_text(f"sentence1,sentence2,label\nx,y,1\n{row}\n")
    with pytest.raises(DataError, match=rf"shape\.csv, line 3: {count} values but the header \(line 1\) has 3 "
                       r"columns\. Quote values that contain ','"):  # fmt: skip
        load_user_file(path, "rte")


def test_csv_lines_count_quoted_newlines_and_blank_lines(tmp_path):
    path = tmp_path / "multi.csv"
    path.write_text('sentence1,sentence2,label\n"two\nlines",b,0\n\nc,d,9\n')
    with pytest.raises(DataError, match=r"multi\.csv, line 5, field 'label'.*outside the label set"):
        load_user_file(path, "rte")


# -------------------------------------------------------------------------------------------- predict
def test_predict_inputs_are_checked_before_the_model_loads_naming_file_lines(tmp_path, capsys):
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text(
        '{"task": "rte", "sentence1": "a", "sentence2": "b"}\n\n{"task": "rte", "sentence1": "a"}\n'
    )
    code = main(
        ["predict", str(tmp_path / "no-run"), "--inputs", str(inputs), "--output", str(tmp_path / "o.jsonl")]
    )
    err = capsys.readouterr().err
    assert code == 2 and "inputs.jsonl, line 3: field(s) 'sentence2' missing for task 'rte'" in err, err
    inputs.write_text('{"task": "rte", "sentence1": "a", "sentence2": 7}\n')
    assert (
        main(["predict", str(tmp_path / "no-run"), "--inputs", str(inputs), "--output", str(tmp_path / "o")])
        == 2
    )
    assert (
        "inputs.jsonl, line 1, field 'sentence2': expected text, got a number (7)" in capsys.readouterr().err
    )


def test_predict_counts_inputs_from_1_in_its_errors():
    model = types.SimpleNamespace(tasks=["rte"], family="seq2seq")
    rows = [{"task": "rte", "sentence1": "a", "sentence2": "b"}, {"task": "rte", "sentence1": "a"}]
    with pytest.raises(ValueError, match=r"Input 2 \(counted from 1, .*\): field\(s\) 'sentence2' missing"):
        predict(model, None, rows)
    with pytest.raises(
        ValueError, match=r"Input 1 \(counted from 1, .*\): task 'cb' is not one of the model's tasks"
    ):
        predict(model, None, [{"task": "cb", "premise": "a", "hypothesis": "b"}])
