"""FineTuneModel (full fine-tuning and LoRA) on tiny random backbones of every family."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from attempt.modeling import CausalAttemptModel, families
from attempt.modeling.base import AttemptOutput
from attempt.modeling.finetune import FineTuneConfig, FineTuneModel, default_target_modules
from attempt.testing import build_backbone

FAMILIES = [("seq2seq", None), ("causal", None), ("causal", "gpt2"), ("encoder", None)]


def _batch(family: str, batch: int = 3, length: int = 7):
    torch.manual_seed(1)
    ids = torch.randint(5, 90, (batch, length))
    mask = torch.ones_like(ids)
    if family == "causal":
        mask[0, :2] = 0  # left padding
        ids[0, :2] = 0
    else:
        mask[0, -2:] = 0
        ids[0, -2:] = 0
    if family == "seq2seq":
        labels = torch.randint(5, 90, (batch, 3))
    elif family == "causal":
        labels = ids.masked_fill(mask == 0, -100)
    else:
        labels = torch.tensor([0, 1, 1][:batch])
    return ids, mask, labels


def _build(family, arch, mode, **kw):
    backbone = build_backbone(family, arch=arch)
    kw.setdefault("num_labels", 2 if family == "encoder" else None)
    return FineTuneModel.from_backbone(backbone, mode=mode, tasks=["rte"], **kw)


@pytest.mark.parametrize("mode", ["finetune", "lora"])
@pytest.mark.parametrize("family,arch", FAMILIES)
def test_forward_backward_and_trainable(family, arch, mode):
    model = _build(family, arch, mode)
    assert model.family == family
    ids, mask, labels = _batch(family)
    out = model(ids, mask, labels=labels)
    assert isinstance(out, AttemptOutput) and out.attention_weights is None
    assert torch.isfinite(out.loss)
    if family == "causal":
        assert out.logits.shape[:2] == ids.shape  # aligned with input_ids
    out.loss.backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    parts = model.num_parameters_by_part()
    if mode == "finetune":
        assert all(p.requires_grad for p in model.backbone.parameters())
        assert parts["trainable"] == parts["backbone"] + parts["head"]
    else:
        assert trainable and all("lora_" in n or n.startswith("head.") for n in trainable)
        assert parts["trainable"] < parts["backbone"] / 2  # tiny models: r=8 is large next to d=32
        assert any(
            p.grad is not None and p.grad.abs().sum() > 0
            for n, p in model.named_parameters()
            if "lora_B" in n
        )
    assert set(model.trainable_state_dict()) == trainable
    assert "trainable params" in model.print_trainable_parameters()


@pytest.mark.parametrize("mode", ["finetune", "lora"])
@pytest.mark.parametrize("family,arch", FAMILIES)
def test_loss_only_gives_the_loss_and_gradients_of_the_full_forward(family, arch, mode):
    """Training asks for the loss only (a decoder's LM head then runs on the label positions alone): the
    same loss and the same gradients as the full forward, for full fine-tuning and LoRA alike."""
    model = _build(family, arch, mode).eval()  # no dropout: the two forwards must see the same network
    ids, mask, labels = _batch(family)
    if family == "causal":  # labels on the last two tokens only, as a classification row has
        labels[:, :-2] = -100
    results = []
    for loss_only in (False, True):
        model.zero_grad()
        out = model(ids, mask, labels=labels, loss_only=loss_only)
        out.loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((out, grads))
    (full, full_grads), (fast, fast_grads) = results
    torch.testing.assert_close(fast.loss, full.loss)
    assert full_grads.keys() == fast_grads.keys() and full_grads
    for name, grad in full_grads.items():
        torch.testing.assert_close(fast_grads[name], grad, msg=name)
    assert (fast.logits is None) == (family == "causal")


@pytest.mark.parametrize("mode", ["finetune", "lora"])
@pytest.mark.parametrize("family,arch", FAMILIES)
def test_save_load_round_trip(tmp_path, family, arch, mode):
    torch.manual_seed(0)
    base = build_backbone(family, arch=arch)
    fresh = copy.deepcopy(base)
    model = FineTuneModel.from_backbone(base, mode=mode, num_labels=2 if family == "encoder" else None)
    with torch.no_grad():  # move every trained weight away from its initial value
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    model.eval()
    ids, mask, labels = _batch(family)
    expected = model(ids, mask, labels=labels)
    model.save_pretrained(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "finetune_config.json").read_text())
    assert meta["family"] == family and meta["finetune"]["mode"] == mode
    assert (tmp_path / "m" / "finetune_model.safetensors").is_file()
    loaded = FineTuneModel.from_pretrained(fresh, tmp_path / "m").eval()
    got = loaded(ids, mask, labels=labels)
    torch.testing.assert_close(got.logits, expected.logits, rtol=0, atol=0)
    torch.testing.assert_close(got.loss, expected.loss, rtol=0, atol=0)


def test_load_rejects_other_keys(tmp_path):
    model = _build("causal", None, "lora")
    model.save_pretrained(tmp_path / "m")
    other = build_backbone("causal")
    meta = json.loads((tmp_path / "m" / "finetune_config.json").read_text())
    meta["finetune"]["lora_rank"] = 4  # same keys, different shapes
    (tmp_path / "m" / "finetune_config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="shape"):
        FineTuneModel.from_pretrained(other, tmp_path / "m")
    meta["finetune"]["mode"] = "finetune"
    (tmp_path / "m" / "finetune_config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="does not match"):
        FineTuneModel.from_pretrained(build_backbone("causal"), tmp_path / "m")
    with pytest.raises(FileNotFoundError):
        FineTuneModel.from_pretrained(other, tmp_path / "nothing")


def test_load_checks_the_recorded_hash_and_finiteness_of_the_weights(tmp_path):
    from safetensors.torch import load_file, save_file

    from attempt.modeling.finetune import CONFIG_FILE, WEIGHTS_FILE
    from attempt.utils.reading import HASH_KEY, CorruptFile

    model = _build("causal", None, "lora")
    model.save_pretrained(tmp_path / "m")
    weights, config = tmp_path / "m" / WEIGHTS_FILE, tmp_path / "m" / CONFIG_FILE
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01  # one bit of one value: a valid file, finite values
    weights.write_bytes(bytes(data))
    with pytest.raises(CorruptFile, match=f"{weights} has changed since it was written.*train it again"):
        FineTuneModel.from_pretrained(build_backbone("causal"), tmp_path / "m")
    meta = json.loads(config.read_text())
    del meta[HASH_KEY]  # a folder saved before the hash was recorded still loads
    config.write_text(json.dumps(meta))
    FineTuneModel.from_pretrained(build_backbone("causal"), tmp_path / "m")
    state = load_file(str(weights))
    next(iter(state.values())).view(-1)[0] = float("inf")
    save_file(state, str(weights))
    with pytest.raises(CorruptFile, match="NaN or infinite"):
        FineTuneModel.from_pretrained(build_backbone("causal"), tmp_path / "m")
    config.write_text("{")
    with pytest.raises(CorruptFile, match=f"{config} is damaged"):
        FineTuneModel.from_pretrained(build_backbone("causal"), tmp_path / "m")


def test_tied_embeddings_saved_once(tmp_path):
    import transformers as tf

    config = tf.LlamaConfig(
        vocab_size=50,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        tie_word_embeddings=True,
    )
    model = FineTuneModel.from_backbone(tf.LlamaForCausalLM(config), mode="finetune")
    model.save_pretrained(tmp_path / "m")  # safetensors refuses shared tensors: must not raise
    FineTuneModel.from_pretrained(tf.LlamaForCausalLM(config), tmp_path / "m")


@pytest.mark.parametrize("family,arch", [("causal", None), ("causal", "gpt2"), ("seq2seq", None)])
def test_generate_and_likelihood(family, arch):
    model = _build(family, arch, "lora").eval()
    ids, mask, _ = _batch(family)
    new = model.generate(ids, mask, max_new_tokens=3, do_sample=False)
    if family == "causal":
        assert new.shape == (3, 3)  # only the new tokens
        labels = ids.masked_fill(mask == 0, -100)
        labels[:, :4] = -100
        scores = model.sequence_log_likelihood(ids, mask, labels)
        logp = model(ids, mask).logits.log_softmax(-1)
        manual = sum(logp[:, t - 1].gather(-1, ids[:, t : t + 1]).squeeze(-1) for t in range(4, ids.shape[1]))
        torch.testing.assert_close(scores, manual)
    else:
        labels = torch.randint(5, 90, (3, 2))
        assert model.sequence_log_likelihood(ids, mask, labels).shape == (3,)
    with pytest.raises(ValueError, match="left padding"):
        if family == "causal":
            bad = mask.clone()
            bad[1, -1] = 0
            model.generate(ids, bad, max_new_tokens=1)
        else:
            raise ValueError("left padding")  # seq2seq has no padding-side requirement


def test_causal_left_padding_matches_unpadded():
    model = _build("causal", None, "finetune").eval()
    ids, mask, _ = _batch("causal")
    padded = model(ids, mask).logits[0, 2:]
    alone = model(ids[:1, 2:], mask[:1, 2:]).logits[0]
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=1e-4)


def test_encoder_heads_regression_and_tasks():
    model = FineTuneModel.from_backbone(
        build_backbone("encoder"), mode="lora", tasks=["rte", "stsb"], num_labels={"rte": 2, "stsb": 1}
    )
    ids, mask, _ = _batch("encoder")
    task_ids = model.task_ids(["rte", "stsb", "stsb"])
    out = model(ids, mask, labels=torch.tensor([1.0, 0.3, 0.7]), task_ids=task_ids)
    assert out.logits.shape == (3, 2) and torch.isinf(out.logits[1:, 1]).all()
    assert torch.isfinite(out.loss)
    with pytest.raises(ValueError, match="Unknown task"):
        model.task_ids(["mnli"])
    with pytest.raises(ValueError, match="num_labels"):
        FineTuneModel.from_backbone(build_backbone("encoder"), mode="finetune")
    with pytest.raises(NotImplementedError):
        model.generate(ids, mask)


def test_parameter_groups_learning_rates():
    model = _build("encoder", None, "finetune")
    groups = model.parameter_groups(1e-5, head_lr=1e-3, weight_decay=0.01)
    by_name = {g["name"]: g for g in groups}
    assert by_name["backbone"]["lr"] == 1e-5 and by_name["head"]["lr"] == 1e-3
    assert by_name["backbone_no_decay"]["weight_decay"] == 0.0
    covered = {id(p) for g in groups for p in g["params"]}
    assert covered == {id(p) for p in model.parameters() if p.requires_grad}
    torch.optim.AdamW(groups)  # accepted as is
    lora = _build("causal", None, "lora")
    assert {g["name"] for g in lora.parameter_groups(1e-3)} == {"backbone"}  # LoRA matrices only


def test_default_target_modules_and_config():
    assert default_target_modules(build_backbone("seq2seq").config) == ["q", "v"]
    assert default_target_modules(build_backbone("causal").config) == ["q_proj", "v_proj"]
    assert default_target_modules(build_backbone("causal", arch="gpt2").config) == ["c_attn"]
    assert default_target_modules(build_backbone("encoder").config) == ["query", "value"]
    with pytest.raises(ValueError, match="mode"):
        FineTuneConfig(mode="adapter")
    config = FineTuneConfig(mode="lora", tasks=("a", "b"), num_labels={"a": 2, "b": 1}, target_modules=["q"])
    assert FineTuneConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


@pytest.mark.parametrize("family,arch", FAMILIES)
def test_from_backbone_and_from_pretrained_pick_the_registered_class_of_the_family(tmp_path, family, arch):
    model = _build(family, arch, "lora")
    expected = families.family_class("finetune", family)
    assert type(model) is expected and expected.family == family and expected.__bases__ == (FineTuneModel,)
    model.save_pretrained(tmp_path)
    assert type(FineTuneModel.from_pretrained(build_backbone(family, arch=arch), tmp_path)) is expected


def test_same_interface_as_attempt_model():
    for name in (
        "forward",
        "generate",
        "sequence_log_likelihood",
        "parameter_groups",
        "trainable_state_dict",
        "save_pretrained",
        "from_pretrained",
        "task_ids",
        "num_parameters_by_part",
        "print_trainable_parameters",
        "tasks",
    ):
        assert hasattr(CausalAttemptModel, name) and hasattr(FineTuneModel, name)
