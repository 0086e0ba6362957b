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


@pytest.mark.parametrize(("family", "task_type"), [("causal", "CAUSAL_LM"), ("seq2seq", "SEQ_2_SEQ_LM")])
def test_an_attempt_model_exported_to_peft_is_that_model_with_its_attention_frozen(
    tmp_path, family, task_type
):  # fmt: skip
    """What the export keeps: the target prompt, the sources and one mixture of them; what it loses: the per-input
    choice (each input's own attention weights)."""
    peft = pytest.importorskip("peft")
    from attempt import AttemptConfig, AttemptModel
    from attempt.modeling.export import export_peft, fixed_prompt
    from attempt.testing import build_tokenizer

    tokenizer = build_tokenizer(family)
    config = AttemptConfig(tasks=("rte", "cb"), prompt_length=5, bottleneck_size=8, temperature="sqrt_d")
    sources = [prompt("mnli", m=5, d=32, seed=1), prompt("qnli", m=5, d=32, seed=2)]
    model = AttemptModel.from_backbone(build_backbone(family), sources, config, backbone_name="tiny").eval()
    first, second = (
        tokenizer(text, return_tensors="pt") for text in ("the cat is happy .", "a man was not sad")
    )
    labels = tokenizer("yes", return_tensors="pt")["input_ids"] if family == "seq2seq" else None
    task_ids = torch.tensor([1])  # cb, the model's second task
    with torch.no_grad():
        mixture = model(**first, task_ids=task_ids, labels=labels).attention_weights  # (1, 3): one input's
        own = model(**second, task_ids=task_ids, labels=labels)
    weights = dict(zip(["mnli", "qnli", "target"], mixture[0].tolist(), strict=True))
    adapter = export_peft(model, "cb", tmp_path / "adapter", weights)
    exported = json.loads((adapter / "adapter_config.json").read_text())
    assert (exported["task_type"], exported["num_virtual_tokens"], exported["base_model_name_or_path"]) == (
        task_type, 5, "tiny"
    )  # fmt: skip

    def frozen(input_embeds, attention_mask=None, task_ids=None):  # every input gets the one mixture
        target = model.mixture.target_prompts[task_ids]  # (B, m, d)
        fixed = mixture.expand(input_embeds.shape[0], -1)
        return model.mixture.mix(fixed, target).to(input_embeds.dtype), fixed

    model.mixture.forward = frozen
    with torch.no_grad():
        frozen_out = model(**second, task_ids=task_ids, labels=labels)
    del model.mixture.forward
    peft_model = peft.PeftModel.from_pretrained(build_backbone(family), str(adapter)).eval()
    with torch.no_grad():
        peft_out = peft_model(**second, labels=labels) if labels is not None else peft_model(**second)
    # every position the AttemptModel returns (PEFT's causal logits also hold the prompt's own positions, first)
    assert torch.allclose(peft_out.logits[:, -frozen_out.logits.shape[1] :], frozen_out.logits, atol=1e-5)
    assert torch.allclose(peft_model.get_prompt(1)[0, :5], fixed_prompt(model, "cb", weights))
    # lost: the second input's own attention, and with it its own logits
    assert not torch.allclose(own.attention_weights, mixture, atol=1e-3)
    assert not torch.allclose(own.logits[:, -1], frozen_out.logits[:, -1], atol=1e-4)


def test_the_export_refuses_weights_that_are_not_a_mixture_of_the_attended_prompts(tmp_path):
    from attempt import AttemptConfig, AttemptModel
    from attempt.modeling.export import export_peft

    config = AttemptConfig(tasks=("rte",), prompt_length=5, bottleneck_size=8)
    model = AttemptModel.from_backbone(build_backbone("causal"), [prompt("mnli", m=5, d=32)], config)
    with pytest.raises(
        ValueError, match=r"weights must name exactly the attended prompts \['mnli', 'target'\]"
    ):
        export_peft(model, "rte", tmp_path / "a", {"mnli": 1.0})
    with pytest.raises(ValueError, match="weights must be finite, at least 0 and sum to 1"):
        export_peft(model, "rte", tmp_path / "a", {"mnli": 0.7, "target": 0.7})
    with pytest.raises(ValueError, match=r"Task 'cb' is not one of the model's tasks \['rte'\]"):
        export_peft(model, "cb", tmp_path / "a", {"mnli": 0.5, "target": 0.5})
    assert not (tmp_path / "a").exists()


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
