"""`attempt quickstart` end to end on a tiny BERT saved to a folder, with real rows from the mirror."""

from __future__ import annotations

import json

from attempt.cli import main
from attempt.testing import build_backbone, build_tokenizer


def test_quickstart_writes_table_heatmap_and_reuses_sources(tmp_path, data_dir, capsys):
    backbone_dir = tmp_path / "tiny-bert"
    build_backbone("encoder").save_pretrained(backbone_dir)
    build_tokenizer("encoder").save_pretrained(backbone_dir)
    out = tmp_path / "qs"
    argv = [
        "quickstart",
        "--out",
        str(out),
        "--backbone",
        str(backbone_dir),
        "--data-dir",
        str(data_dir),
        "--sources",
        "sst2",
        "qnli",
        "--target",
        "rte",
        "--prompt-length",
        "4",
        "--source-steps",
        "2",
        "--target-steps",
        "2",
        "--batch-size",
        "4",
        "--train-limit",
        "16",
        "--eval-limit",
        "8",
        "--quiet",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "training source prompt 'sst2'" in printed and "| rte | ATTEMPT |" in printed
    # prompt tuning draws no heatmap, and says so
    assert "[quickstart] prompt tuning mixes no prompts, so it has no attention heatmap\n" in printed
    assert sorted(p.name for p in (out / "prompts").iterdir()) == [
        "qnli.json",
        "qnli.safetensors",
        "sst2.json",
        "sst2.safetensors",
    ]
    assert (out / "attention_heatmap.png").stat().st_size > 1000
    results = json.loads((out / "results.json").read_text())
    assert [(r["method"], r["metric"]) for r in results["rows"]] == [
        ("ATTEMPT", "accuracy"),
        ("prompt tuning", "accuracy"),
    ]
    attempt_row, tuning_row = results["rows"]
    assert attempt_row["trainable_parameters"] > tuning_row["trainable_parameters"] > 0
    assert (out / "results.md").read_text().startswith("| task | method | trainable params |")

    assert main(argv) == 0  # a second run reuses the source prompts
    printed = capsys.readouterr().out
    assert "reusing source prompt 'sst2'" in printed and "training source prompt" not in printed


def test_quickstart_uses_shipped_prompts_and_draws_each_example(tmp_path, data_dir, capsys, monkeypatch):
    import torch

    import attempt.prompts.shipped
    from attempt.prompts.library import PromptLibrary, SourcePrompt

    backbone_dir = tmp_path / "tiny-bert"
    build_backbone("encoder").save_pretrained(backbone_dir)
    build_tokenizer("encoder").save_pretrained(backbone_dir)
    shipped = PromptLibrary(tmp_path / "shipped" / "tiny-bert")
    for i, name in enumerate(("sst2", "qnli")):
        shipped.add(
            SourcePrompt(name, torch.randn(4, 32, generator=torch.Generator().manual_seed(i)), task=name)
        )
    monkeypatch.setattr(attempt.prompts.shipped, "SHIPPED_ROOT", tmp_path / "shipped")
    out = tmp_path / "qs"
    argv = [
        "quickstart",
        "--out",
        str(out),
        "--backbone",
        str(backbone_dir),
        "--data-dir",
        str(data_dir),
        "--sources",
        "sst2",
        "qnli",
        "--target",
        "rte",
        "--prompt-length",
        "4",
        "--target-steps",
        "2",
        "--batch-size",
        "4",
        "--train-limit",
        "16",
        "--eval-limit",
        "8",
        "--quiet",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert (
        "using the shipped source prompts sst2, qnli" in printed and "training source prompt" not in printed
    )
    assert not (out / "prompts").exists()
    assert (out / "attention_examples.png").stat().st_size > 1000
    saved = json.loads((out / "runs" / "attempt-rte" / "train_config.json").read_text())
    assert saved["library"] == "../../../shipped/tiny-bert"  # relative to the run folder
    assert "centre_inputs" not in saved["attempt"]  # the paper's x̂ unless asked

    assert main([*argv, "--out", str(tmp_path / "centred"), "--centre-inputs"]) == 0
    runs = tmp_path / "centred" / "runs"
    assert (
        json.loads((runs / "attempt-rte" / "train_config.json").read_text())["attempt"]["centre_inputs"]
        is True
    )
    assert (
        "centre_inputs"
        not in json.loads((runs / "prompt_tuning-rte" / "train_config.json").read_text())["attempt"]
    )
    capsys.readouterr()

    other = [*argv, "--out", str(tmp_path / "qs6"), "--prompt-length", "6", "--source-steps", "1"]
    assert main(other) == 0  # the shipped ones have m = 4: trained here instead
    assert "training source prompt 'sst2'" in capsys.readouterr().out
