"""The three backbone wrappers on tiny random backbones: freezing, gradients, save/load, multi-task."""

from __future__ import annotations

import json

import pytest
import torch

from attempt import AttemptConfig, AttemptModel, PromptLibrary, SourcePrompt
from attempt.modeling import CausalAttemptModel, EncoderAttemptModel, Seq2SeqAttemptModel, families
from attempt.testing import build_backbone, build_tokenizer

M = 4
FAMILIES = [
    ("seq2seq", None),
    ("seq2seq", "bart"),
    ("causal", None),
    ("causal", "gpt2"),
    ("causal", "qwen2"),
    ("encoder", None),
    ("encoder", "roberta"),
]


def sources(d: int = 32, t: int = 3, seed: int = 0) -> list[SourcePrompt]:
    g = torch.Generator().manual_seed(seed)
    return [SourcePrompt(f"src{i}", torch.randn(M, d, generator=g), task=f"task{i}") for i in range(t)]


def build(family, arch=None, tasks=("rte", "cb"), method="attempt", **fields):
    backbone = build_backbone(family, arch=arch)
    if family == "encoder":
        fields.setdefault("num_labels", {"rte": 2, "cb": 3} if tasks == ("rte", "cb") else 2)
    config = AttemptConfig(method=method, prompt_length=M, tasks=tasks, **fields)
    return AttemptModel.from_backbone(backbone, source_prompts=sources(), config=config)


def make_batch(
    family, texts=("the cat is happy", "a dog", "the movie was great and good"), task_ids=(0, 1, 0)
):
    tokenizer = build_tokenizer("causal" if family == "causal" else family)
    if family == "causal":
        tokenizer.padding_side = "right"
    enc = tokenizer(list(texts), padding=True, return_tensors="pt")
    batch = {
        "input_ids": enc["input_ids"],
        "attention_mask": enc["attention_mask"],
        "task_ids": torch.tensor(task_ids),
    }
    if family == "seq2seq":
        labels = build_tokenizer("seq2seq")(["yes", "no", "yes"], padding=True, return_tensors="pt")[
            "input_ids"
        ]
        batch["labels"] = labels.masked_fill(labels == 0, -100)
    elif family == "causal":
        batch["labels"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    else:
        batch["labels"] = torch.tensor([1, 2, 0])
        batch["token_type_ids"] = enc["token_type_ids"]
    return batch


@pytest.mark.parametrize(("family", "arch"), FAMILIES)
def test_wrapper_per_family_and_outputs(family, arch):
    model = build(family, arch)
    expected = {"seq2seq": Seq2SeqAttemptModel, "causal": CausalAttemptModel, "encoder": EncoderAttemptModel}
    assert type(model) is expected[family]
    out = model(**make_batch(family))
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert out.attention_weights.shape == (3, 3 + 1)
    torch.testing.assert_close(out.attention_weights.sum(-1), torch.ones(3))
    if family == "encoder":
        assert out.logits.shape == (3, 3)
        assert torch.isinf(out.logits[0, 2]) and torch.isfinite(out.logits[1]).all()  # rte has 2 classes


def test_one_registry_names_the_class_of_every_kind_and_backbone_family():
    from attempt.modeling.finetune import CausalFineTuneModel, EncoderFineTuneModel, Seq2SeqFineTuneModel

    found = {
        (kind, family): families.class_for(kind, build_backbone(family).config)
        for kind in families.KINDS
        for family in ("seq2seq", "causal", "encoder")
    }
    assert found == {
        ("attempt", "seq2seq"): Seq2SeqAttemptModel, ("attempt", "causal"): CausalAttemptModel,
        ("attempt", "encoder"): EncoderAttemptModel, ("finetune", "seq2seq"): Seq2SeqFineTuneModel,
        ("finetune", "causal"): CausalFineTuneModel, ("finetune", "encoder"): EncoderFineTuneModel,
    }  # fmt: skip
    assert families.family_class("attempt", "causal") is CausalAttemptModel


def test_an_unknown_family_or_kind_is_one_clear_error():
    with pytest.raises(ValueError) as unknown:
        families.family_class("attempt", "rnn")
    assert str(unknown.value) == (
        "No attempt model for the 'rnn' backbone family (registered: causal, encoder, seq2seq); register one "
        "with @attempt.modeling.families.register."
    )
    with pytest.raises(
        ValueError, match=r"^Unknown model kind 'adapter'\. Choose one of: attempt, finetune\.$"
    ):
        families.register("adapter")
    with pytest.raises(
        ValueError, match=r"^Plain has no family: set family = 'seq2seq', 'causal' or 'encoder'\.$"
    ):
        families.register("attempt")(type("Plain", (), {}))


@pytest.mark.parametrize(("family", "arch"), FAMILIES)
def test_only_prompt_attention_and_head_get_gradients_and_change(family, arch):
    model = build(family, arch)
    model.train()
    backbone_before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    trainable_before = {k: v.clone() for k, v in model.trainable_state_dict().items()}
    optimizer = torch.optim.AdamW(model.parameter_groups(prompt_lr=0.1, attention_lr=0.05), weight_decay=0.0)
    model(**make_batch(family)).loss.backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    expected = {
        "mixture.target_prompts",
        "mixture.attention.down.weight",
        "mixture.attention.up.weight",
        "mixture.attention.norm.weight",
        "mixture.attention.norm.bias",
    }
    if family == "encoder":
        expected |= {
            "head.heads.rte.weight",
            "head.heads.rte.bias",
            "head.heads.cb.weight",
            "head.heads.cb.bias",
        }
    assert with_grad == expected
    assert all(not p.requires_grad for p in model.backbone.parameters())
    optimizer.step()
    for k, v in model.backbone.state_dict().items():
        assert torch.equal(v, backbone_before[k]), k
    for k, v in model.trainable_state_dict().items():
        assert not torch.equal(v, trainable_before[k]), f"{k} did not change"


def test_attention_learning_rate_really_applies():
    model = build("seq2seq")
    groups = model.parameter_groups(prompt_lr=0.3, attention_lr=0.0)
    assert {g["name"]: g["lr"] for g in groups} == {"prompt": 0.3, "attention": 0.0, "attention_norm": 0.0}
    optimizer = torch.optim.AdamW(groups)
    attention_before = {k: v.clone() for k, v in model.mixture.attention.state_dict().items()}
    prompt_before = model.mixture.target_prompts.detach().clone()
    model(**make_batch("seq2seq")).loss.backward()
    optimizer.step()
    for k, v in model.mixture.attention.state_dict().items():
        assert torch.equal(v, attention_before[k]), k
    assert not torch.equal(model.mixture.target_prompts, prompt_before)


@pytest.mark.parametrize(("family", "arch"), FAMILIES)
def test_save_load_round_trip(tmp_path, family, arch):
    model = build(family, arch)
    with torch.no_grad():  # move every weight away from its initial value
        for p in model.trainable_state_dict().values():
            p.add_(torch.randn_like(p) * 0.1)
    library = PromptLibrary(tmp_path / "library")
    for p in sources():
        library.add(p)
    model.save_pretrained(tmp_path / "run")
    config = json.loads((tmp_path / "run" / "attempt_config.json").read_text())
    assert [s["name"] for s in config["source_prompts"]] == ["src0", "src1", "src2"]
    from safetensors.torch import load_file

    keys = set(load_file(str(tmp_path / "run" / "attempt_model.safetensors")))
    expected = {
        "mixture.target_prompts",
        "mixture.attention.down.weight",
        "mixture.attention.up.weight",
        "mixture.attention.norm.weight",
        "mixture.attention.norm.bias",
    }
    if family == "encoder":
        expected |= {
            "head.heads.rte.weight",
            "head.heads.rte.bias",
            "head.heads.cb.weight",
            "head.heads.cb.bias",
        }
    assert keys == expected
    loaded = AttemptModel.from_pretrained(model.backbone, tmp_path / "run", source_prompts=library)
    batch = make_batch(family)
    model.eval()
    loaded.eval()
    a, b = model(**batch), loaded(**batch)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.attention_weights, b.attention_weights)


def test_load_catches_a_changed_source_prompt_and_a_dimension_mismatch(tmp_path):
    model = build("causal")
    model.save_pretrained(tmp_path / "run")
    changed = sources()
    changed[1] = SourcePrompt("src1", changed[1].embeddings + 1e-3)
    with pytest.raises(ValueError, match="Source prompt 'src1' differs from the one"):
        AttemptModel.from_pretrained(model.backbone, tmp_path / "run", source_prompts=changed)
    with pytest.raises(ValueError, match="pass them"):
        AttemptModel.from_pretrained(model.backbone, tmp_path / "run")
    with pytest.raises(ValueError, match="d=32"):
        AttemptModel.from_pretrained(
            build_backbone("causal", hidden_size=48), tmp_path / "run", source_prompts=sources()
        )
    with pytest.raises(ValueError, match=r"has d=32 .* this backbone's embeddings have d=48"):
        AttemptModel.from_backbone(
            build_backbone("causal", hidden_size=48), source_prompts=sources(), prompt_length=M
        )


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        (
            (M, 16),
            rf"Source prompt 'src1' has shape \(m, d\) = \({M}, 16\) .*\(d: expected 32, found 16; m: expected",
        ),
        (
            (M + 2, 32),
            rf"Source prompt 'src1' has shape \(m, d\) = \({M + 2}, 32\) .*m: expected {M}, found {M + 2}\)",
        ),
    ],
)
def test_load_reports_a_library_prompt_of_another_shape_as_a_shape_mismatch(tmp_path, shape, message):
    # evaluate loads the run's prompts from its library: one replaced by a prompt of another width is a width
    # mismatch (what to fix), not "differs from the one it was trained with" (which every other change also says)
    model = build("causal")
    model.save_pretrained(tmp_path / "run")
    library = PromptLibrary(tmp_path / "library")
    for p in sources():
        library.add(p)
    library.add(SourcePrompt("src1", torch.randn(*shape)), overwrite=True)
    with pytest.raises(ValueError, match=message + r".*put the original prompt back"):
        AttemptModel.from_pretrained(model.backbone, tmp_path / "run", source_prompts=library)


@pytest.mark.parametrize(("family", "arch"), FAMILIES)
def test_mixed_task_batch_uses_each_task_prompt_in_forward(family, arch):
    model = build(family, arch, method="prompt_tuning", target_init="vocab")
    with torch.no_grad():
        model.mixture.target_prompts[1].normal_()
    model.eval()
    mixed = make_batch(family, task_ids=(0, 1, 0))
    if family == "encoder":
        mixed.pop("labels")  # rte has 2 classes: cb's label 2 is no rte label
    out = model(**mixed)
    for task in (0, 1):
        alone = model(**{**mixed, "task_ids": torch.full((3,), task)})
        rows = mixed["task_ids"] == task
        torch.testing.assert_close(out.logits[rows], alone.logits[rows])
        assert not torch.allclose(out.logits[~rows], alone.logits[~rows])


@pytest.mark.parametrize(("family", "arch"), [f for f in FAMILIES if f[0] != "encoder"])
def test_mixed_task_generate_uses_each_task_prompt(family, arch):
    model = build(family, arch, method="prompt_tuning", target_init="vocab")
    with torch.no_grad():
        model.mixture.target_prompts[1].normal_(std=3.0)
    tokenizer = build_tokenizer(family)
    texts = ["the cat is happy", "a dog", "the movie was great and good", "no"]
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    task_ids = torch.tensor([0, 1, 1, 0])
    kwargs = {"max_new_tokens": 5, "do_sample": False, "output_scores": True, "return_dict_in_generate": True}
    mixed = model.generate(enc["input_ids"], enc["attention_mask"], task_ids=task_ids, **kwargs)
    outputs = {
        t: model.generate(enc["input_ids"], enc["attention_mask"], task_ids=torch.full((4,), t), **kwargs)
        for t in (0, 1)
    }
    for row, task in enumerate(task_ids.tolist()):
        assert torch.equal(mixed.sequences[row], outputs[task].sequences[row])
        torch.testing.assert_close(mixed.scores[0][row], outputs[task].scores[0][row])
    assert not torch.allclose(outputs[0].scores[0], outputs[1].scores[0])


@pytest.mark.parametrize("arch", [None, "gpt2", "qwen2"])
def test_causal_generation_ignores_left_padding(arch):
    """A left-padded row generates exactly what the same row generates alone, and what a greedy loop over
    forward() picks."""
    model = build("causal", arch)
    tokenizer = build_tokenizer("causal")
    texts = ["the cat is happy and the dog is sad", "a dog"]
    enc = tokenizer(texts, padding=True, return_tensors="pt")
    kwargs = {"max_new_tokens": 4, "do_sample": False}
    together = model.generate(
        enc["input_ids"], enc["attention_mask"], task_ids=torch.tensor([0, 1]), **kwargs
    )
    alone = tokenizer([texts[1]], return_tensors="pt")
    single = model.generate(alone["input_ids"], alone["attention_mask"], task_ids=torch.tensor([1]), **kwargs)
    assert torch.equal(together[1], single[0])
    ids = alone["input_ids"]
    for _ in range(4):
        logits = model(ids, torch.ones_like(ids), task_ids=torch.tensor([1])).logits
        ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(single[0], ids[0, alone["input_ids"].shape[1] :])


def test_causal_generate_rejects_right_padding():
    model = build("causal")
    tokenizer = build_tokenizer("causal")
    tokenizer.padding_side = "right"
    enc = tokenizer(["the cat", "a dog is happy"], padding=True, return_tensors="pt")
    with pytest.raises(ValueError, match="left padding"):
        model.generate(enc["input_ids"], enc["attention_mask"], max_new_tokens=2)


def test_sequence_log_likelihood_ranks_label_words():
    for family in ("seq2seq", "causal"):
        model = build(family)
        batch = make_batch(family)
        scores = model.sequence_log_likelihood(**batch)
        assert scores.shape == (3,) and (scores < 0).all()


def test_trainable_parameter_count_matches_the_paper_arithmetic():
    """T5-base-shaped: d=768, m=100 → prompt 76,800 + attention 2·768·100 + LayerNorm 2·768 = 231,936."""
    import transformers as tf

    config = tf.T5Config(vocab_size=64, d_model=768, d_kv=8, d_ff=8, num_layers=1, num_heads=1)
    backbone = tf.T5ForConditionalGeneration(config)
    prompts = [SourcePrompt(f"s{i}", torch.randn(100, 768)) for i in range(6)]
    model = AttemptModel.from_backbone(backbone, source_prompts=prompts, tasks=["rte"])
    parts = model.num_parameters_by_part()
    assert (parts["prompt"], parts["attention"], parts["head"]) == (76_800, 153_600 + 1_536, 0)
    glue = ["mnli", "qqp", "qnli", "sst2", "stsb", "mrpc", "rte", "cola"]
    shared = AttemptModel.from_backbone(backbone, source_prompts=prompts, tasks=glue)
    parts = shared.num_parameters_by_part()
    assert (parts["prompt"] + parts["attention"]) / 8 == 76_800 + (153_600 + 1_536) / 8  # ≈ 96K per task
    assert "trainable params: 231,936" in model.print_trainable_parameters()


def test_target_initialisation_options():
    backbone = build_backbone("causal")
    tokenizer = build_tokenizer("causal")
    prompts = sources()
    model = AttemptModel.from_backbone(backbone, source_prompts=prompts, prompt_length=M)
    assert torch.equal(model.mixture.target_prompts[0], prompts[0].embeddings)  # the original's choice
    model = AttemptModel.from_backbone(
        backbone, source_prompts=prompts, prompt_length=M, target_init_source="src2"
    )
    assert torch.equal(model.mixture.target_prompts[0], prompts[2].embeddings)
    model = AttemptModel.from_backbone(
        backbone,
        prompt_length=M,
        method="prompt_tuning",
        target_init="text",
        target_init_text="the cat",
        tokenizer=tokenizer,
    )
    embedding = backbone.get_input_embeddings().weight
    ids = tokenizer("the cat", add_special_tokens=False)["input_ids"]
    assert torch.equal(model.mixture.target_prompts[0, 1], embedding[ids[1]])
    assert torch.equal(model.mixture.target_prompts[0, 2], embedding[ids[0]])
    model = AttemptModel.from_backbone(backbone, prompt_length=M, method="prompt_tuning")
    assert model.config.target_init == "vocab" and model.mixture.attention is None
    with pytest.raises(ValueError, match="method='attempt' needs at least one source prompt"):
        AttemptModel.from_backbone(backbone, prompt_length=M)


def test_encoder_requires_num_labels_and_too_long_inputs_are_refused():
    with pytest.raises(ValueError, match="need a head: set num_labels"):
        AttemptModel.from_backbone(build_backbone("encoder"), source_prompts=sources(), prompt_length=M)
    model = build("encoder", tasks=("rte",))
    ids = torch.ones(1, 255, dtype=torch.long)
    with pytest.raises(ValueError, match="exceeds the backbone's 256 positions"):
        model(ids)


def test_regression_head_uses_mse():
    model = build("encoder", tasks=("stsb",), num_labels=1)
    batch = make_batch("encoder", task_ids=(0, 0, 0))
    batch["labels"] = torch.tensor([0.5, 3.0, 4.8])
    out = model(**batch)
    torch.testing.assert_close(out.loss, torch.nn.functional.mse_loss(out.logits[:, 0], batch["labels"]))


def test_modularity_add_source_prompt_to_trained_model(tmp_path):
    model = build("seq2seq")
    attention = {k: v.clone() for k, v in model.mixture.attention.state_dict().items()}
    model.add_source_prompt(SourcePrompt("new", torch.randn(M, 32)))
    assert model(**make_batch("seq2seq")).attention_weights.shape == (3, 5)
    assert all(torch.equal(v, attention[k]) for k, v in model.mixture.attention.state_dict().items())
    model.save_pretrained(tmp_path / "run")
    names = [
        s["name"]
        for s in json.loads((tmp_path / "run" / "attempt_config.json").read_text())["source_prompts"]
    ]
    assert names == ["src0", "src1", "src2", "new"]


@pytest.mark.parametrize("arch", [None, "gpt2", "qwen2"])
def test_causal_lm_head_on_input_positions_only_changes_nothing(arch):
    """Skipping the prompt positions' logits (logits_to_keep) gives the same logits and loss as computing all."""
    model = build("causal", arch)
    batch = make_batch("causal")
    batch["labels"][:, 0] = batch["input_ids"][
        :, 0
    ]  # a label on the first input token, predicted from the prompt
    assert model._keeps_logits
    fast = model(**batch)
    model.__dict__["_keeps_logits"] = False
    full = model(**batch)
    torch.testing.assert_close(fast.logits, full.logits)
    torch.testing.assert_close(fast.loss, full.loss)


def _last_token_labels(batch):
    """Classification-like causal labels: only each row's last real token, at a different position per row."""
    last = batch["attention_mask"].sum(-1) - 1  # (B,)
    labels = torch.full_like(batch["input_ids"], -100)
    rows = torch.arange(labels.shape[0])
    labels[rows, last] = batch["input_ids"][rows, last]
    return labels


def _loss_and_grads(model, batch, **kwargs):
    model.zero_grad()
    out = model(**batch, **kwargs)
    out.loss.backward()
    return out, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize(("family", "arch"), FAMILIES)
@pytest.mark.parametrize("labels", ["every token", "last token"])
def test_loss_only_gives_the_loss_and_gradients_of_the_full_forward(family, arch, labels):
    """Training asks for the loss only; a decoder then runs its LM head on the label positions alone, which
    must change neither the loss nor any gradient (every family accepts the flag)."""
    torch.manual_seed(0)
    model = build(family, arch).eval()  # no dropout: the two forwards must see the same network
    batch = make_batch(family)
    if family == "causal" and labels == "last token":
        batch["labels"] = _last_token_labels(batch)
    full, full_grads = _loss_and_grads(model, batch)
    fast, fast_grads = _loss_and_grads(model, batch, loss_only=True)
    torch.testing.assert_close(fast.loss, full.loss)
    assert full_grads.keys() == fast_grads.keys() and full_grads
    for name, grad in full_grads.items():
        torch.testing.assert_close(fast_grads[name], grad, msg=name)
    assert (fast.logits is None) == (family == "causal")


def test_causal_loss_only_divides_by_num_items_in_batch_as_the_backbone_does():
    """transformers.Trainer may pass num_items_in_batch (gradient accumulation): the summed loss over it."""
    model = build("causal")
    batch = make_batch("causal")
    batch["labels"] = _last_token_labels(batch)
    full = model(**batch, num_items_in_batch=torch.tensor(7)).loss
    fast = model(**batch, num_items_in_batch=torch.tensor(7), loss_only=True).loss
    torch.testing.assert_close(fast, full)
    torch.testing.assert_close(fast, model(**batch).loss * 3 / 7)  # 3 label tokens, summed, over 7


def test_auto_temperature_is_saved_as_a_number_and_reloads_the_same(tmp_path):
    """temperature="auto" is fixed from the source prompts when the model is built; the saved config holds the
    number, so the reloaded model (and any model that later gains a source prompt) keeps the same T."""
    torch.manual_seed(0)
    sources = [SourcePrompt(n, torch.randn(4, 32) * 3, task=n, backbone="tiny") for n in ("mnli", "sst2")]
    backbone = build_backbone("causal")
    model = AttemptModel.from_backbone(backbone, sources, AttemptConfig(prompt_length=4, tasks=("rte",)))
    assert isinstance(model.config.temperature, float)
    assert model.config.temperature == model.mixture.temperature
    model.save_pretrained(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "attempt_config.json").read_text())
    assert saved["attempt"]["temperature"] == model.mixture.temperature
    again = AttemptModel.from_pretrained(backbone, tmp_path / "m", source_prompts=sources)
    assert again.mixture.temperature == model.mixture.temperature


def test_causal_attention_reads_the_input_not_the_label_words():
    """A decoder-only training row is input + label words; the attention must pool the input only, so that
    training sees the same weights as inference (which has no label words)."""
    from attempt.data.collate import Collator

    torch.manual_seed(0)
    sources = [SourcePrompt(n, torch.randn(4, 32) * 3, task=n) for n in ("mnli", "sst2")]
    model = AttemptModel.from_backbone(
        build_backbone("causal"), sources, AttemptConfig(prompt_length=4, tasks=("rte",))
    )
    collator = Collator(build_tokenizer("causal"), "causal", ["rte"], 64, 8)
    rows = [
        {"sentence1": "the cat is happy", "sentence2": "a cat", "label": 0, "idx": 0},
        {"sentence1": "a dog", "sentence2": "the dog is not sad", "label": 1, "idx": 1},
    ]
    examples = [{"task": "rte", "row": row, "index": i} for i, row in enumerate(rows)]
    training, inference = collator(examples), collator(examples, for_generation=True)
    trained = model(**training).attention_weights
    _, _, inferred = model.prompted_inputs(
        inference["input_ids"], inference["attention_mask"], inference["task_ids"]
    )
    torch.testing.assert_close(trained, inferred)
    assert float((trained - trained.mean(0)).abs().max()) > 1e-4  # the weights do depend on the input


def test_from_pretrained_refuses_damaged_weights_naming_the_file(tmp_path):
    from attempt.utils.reading import CorruptFile

    torch.manual_seed(0)
    sources = [SourcePrompt("mnli", torch.randn(4, 32), task="mnli")]
    backbone = build_backbone("causal")
    AttemptModel.from_backbone(
        backbone, sources, AttemptConfig(prompt_length=4, tasks=("rte",))
    ).save_pretrained(tmp_path / "m")
    weights = tmp_path / "m" / "attempt_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-64:] = b"\x7f" * 64  # inside the tensor bytes: still loads, different values
    weights.write_bytes(bytes(data))
    with pytest.raises(CorruptFile, match="attempt_model.safetensors"):
        AttemptModel.from_pretrained(backbone, tmp_path / "m", source_prompts=sources)


def test_centred_inputs_mean_is_saved_and_reloads_the_same(tmp_path):
    """With centre_inputs the running mean μ of the training inputs is part of the saved weights, so a reloaded
    model centres by the same μ and gives the same outputs."""
    model = build("causal", centre_inputs=True)
    batch = make_batch("causal")
    model.train()
    model(**batch)  # a training forward sets μ
    assert (
        int(model.mixture.attention.inputs_seen) == 3 and model.mixture.attention.input_mean.abs().sum() > 0
    )
    model.save_pretrained(tmp_path / "run")
    from safetensors.torch import load_file

    keys = set(load_file(str(tmp_path / "run" / "attempt_model.safetensors")))
    assert {"mixture.attention.input_mean", "mixture.attention.inputs_seen"} <= keys
    loaded = AttemptModel.from_pretrained(model.backbone, tmp_path / "run", source_prompts=sources())
    assert loaded.config.centre_inputs
    model.eval()
    loaded.eval()
    a, b = model(**batch), loaded(**batch)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.attention_weights, b.attention_weights)
