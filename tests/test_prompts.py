"""The prompt library on disk and the interchange formats (original ATTEMPT .pt, PEFT adapters)."""

from __future__ import annotations

import json

import pytest
import torch

from attempt import PromptLibrary, SourcePrompt, read_original_prompt, read_peft_prompt, write_peft_adapter
from attempt.prompts.library import content_hash
from attempt.testing import build_backbone


def prompt(name="mnli", m=4, d=8, seed=0) -> SourcePrompt:
    g = torch.Generator().manual_seed(seed)
    return SourcePrompt(
        name, torch.randn(m, d, generator=g), task=name, backbone="tiny", score={"accuracy": 80.0}
    )


def test_library_add_list_load_rename_remove(tmp_path):
    library = PromptLibrary(tmp_path / "lib")
    assert library.names() == []
    library.add(prompt("mnli"))
    library.add(prompt("qnli", seed=1))
    assert sorted(p.name for p in (tmp_path / "lib").iterdir()) == [
        "mnli.json",
        "mnli.safetensors",
        "qnli.json",
        "qnli.safetensors",
    ]
    meta = library.list()[0]
    assert set(meta) == {"name", "task", "backbone", "hidden_size", "length", "training", "score", "hash"}
    assert (meta["name"], meta["hidden_size"], meta["length"], meta["score"]) == (
        "mnli",
        8,
        4,
        {"accuracy": 80.0},
    )
    loaded = library.load(["qnli", "mnli"])
    assert [p.name for p in loaded] == ["qnli", "mnli"]
    assert torch.equal(loaded[1].embeddings, prompt("mnli").embeddings)
    with pytest.raises(FileExistsError, match="already has a prompt named 'mnli'"):
        library.add(prompt("mnli"))
    library.rename("mnli", "mnli_v2")
    assert library.names() == ["mnli_v2", "qnli"]
    assert library.get("mnli_v2").hash == prompt("mnli").hash
    library.remove("qnli")
    assert library.names() == ["mnli_v2"]
    with pytest.raises(KeyError, match="No source prompt 'qnli' in library .* It has: mnli_v2"):
        library.get("qnli")


def test_library_checks_dimension_and_tampering(tmp_path):
    library = PromptLibrary(tmp_path)
    library.add(prompt("mnli", d=8))
    with pytest.raises(ValueError, match=r"has d=8 .* this backbone's embeddings have d=16"):
        library.load(["mnli"], hidden_size=16)
    meta_path = tmp_path / "mnli.json"
    meta = json.loads(meta_path.read_text())
    meta["hash"] = content_hash(torch.zeros(4, 8))
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="does not match the hash"):
        library.get("mnli")


def test_bad_names_and_values_are_refused():
    with pytest.raises(ValueError, match="Invalid prompt name"):
        SourcePrompt("../escape", torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"must be an \(m, d\) tensor"):
        SourcePrompt("x", torch.zeros(2, 2, 2))
    with pytest.raises(ValueError, match="NaN"):
        SourcePrompt("x", torch.tensor([[float("nan")]]))


def test_failed_write_leaves_the_library_unchanged(tmp_path, monkeypatch):
    library = PromptLibrary(tmp_path)
    library.add(prompt("mnli"))
    before = (tmp_path / "mnli.safetensors").read_bytes()

    def broken_save(tensors, path, metadata=None):
        with open(path, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr("attempt.utils.storage.save_file", broken_save)
    with pytest.raises(OSError, match="disk full"):
        library.add(prompt("mnli", seed=3), overwrite=True)
    assert (tmp_path / "mnli.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnli.json", "mnli.safetensors"]


def test_import_original_release(tmp_path, original_prompts_dir):
    path = original_prompts_dir / "record_prefix_embeddings.t5-base.pt"
    tensor = read_original_prompt(path)
    assert tensor.shape == (100, 768) and tensor.dtype == torch.float32 and tensor.device.type == "cpu"
    library = PromptLibrary(tmp_path)
    imported = library.import_original(path, "record", task="record", backbone="google-t5/t5-base")
    assert torch.equal(library.get("record").embeddings, tensor)
    assert library.list()[0]["training"]["imported_from"] == str(path)
    assert imported.hash == content_hash(tensor)
    assert read_original_prompt(original_prompts_dir / "record_prefix_embeddings_2b.d1024.pt").shape == (
        100,
        1024,
    )


def test_import_original_refuses_pickled_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save(Evil(), path)
    with pytest.raises(ValueError, match="not a plain torch.save'd tensor"):
        read_original_prompt(path)
    torch.save({"a": torch.zeros(3)}, tmp_path / "vector.pt")
    with pytest.raises(ValueError, match=r"should hold one \[m, d\] float tensor"):
        read_original_prompt(tmp_path / "vector.pt")


def test_original_and_peft_import_give_the_same_tensor(tmp_path, original_prompts_dir):
    original = read_original_prompt(original_prompts_dir / "record_prefix_embeddings.t5-base.pt")
    write_peft_adapter(original, tmp_path / "causal", task_type="CAUSAL_LM")
    write_peft_adapter(original, tmp_path / "seq2seq", task_type="SEQ_2_SEQ_LM")
    assert torch.equal(read_peft_prompt(tmp_path / "causal"), original)
    assert torch.equal(read_peft_prompt(tmp_path / "seq2seq"), original)  # first m of 2m rows
    assert torch.equal(read_peft_prompt(tmp_path / "seq2seq" / "adapter_model.safetensors", 100), original)


@pytest.mark.parametrize(("family", "task_type"), [("causal", "CAUSAL_LM"), ("seq2seq", "SEQ_2_SEQ_LM")])
def test_exported_adapter_loads_in_peft(tmp_path, family, task_type):
    peft = pytest.importorskip("peft")
    backbone = build_backbone(family)
    source = prompt("sst2", m=5, d=32)
    library = PromptLibrary(tmp_path / "lib")
    library.add(source)
    library.export_peft("sst2", tmp_path / "adapter", task_type=task_type)
    model = peft.PeftModel.from_pretrained(backbone, str(tmp_path / "adapter"))
    rows = model.prompt_encoder["default"].embedding.weight
    assert torch.equal(rows[:5], source.embeddings)
    # and PEFT's own save of a prompt-tuning adapter imports back to the same tensor
    model.save_pretrained(str(tmp_path / "resaved"))
    assert torch.equal(read_peft_prompt(tmp_path / "resaved"), source.embeddings)


def test_peft_reader_rejects_other_adapters(tmp_path):
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "adapter_model.safetensors"))
    with pytest.raises(ValueError, match="is a LORA adapter"):
        read_peft_prompt(tmp_path)


def test_written_files_get_the_usual_permissions(tmp_path):
    import os
    import stat

    library = PromptLibrary(tmp_path / "lib")
    library.add(prompt("mnli"))
    umask = os.umask(0)
    os.umask(umask)
    mode = stat.S_IMODE((tmp_path / "lib" / "mnli.safetensors").stat().st_mode)
    assert mode == 0o666 & ~umask
