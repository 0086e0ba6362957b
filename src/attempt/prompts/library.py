"""Source prompts and the on-disk prompt library.

A library is a folder with one `<name>.safetensors` (key "prompt", an m × d float32 tensor) and one
`<name>.json` (metadata) per source prompt. Prompts are identified across files by a content hash, so a
trained ATTEMPT model can check that it is loaded with the very prompts it was trained with.

Interchange formats:

- the original ATTEMPT code's `torch.save` of a bare [m, d] tensor (pickled on cuda:0): `read_original_prompt`;
- PEFT prompt-tuning adapters (`adapter_config.json` + `adapter_model.safetensors`, key
  "prompt_embeddings"): `read_peft_prompt` and `write_peft_adapter`.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from attempt.config import PROMPT_NAME, check_prompt_name
from attempt.utils import hub, locking, reading, storage

PEFT_TASK_TYPES = ("CAUSAL_LM", "SEQ_2_SEQ_LM", "FEATURE_EXTRACTION", "SEQ_CLS")
LOCK_WAIT_S = 30.0  # how long a write waits for another writer of the same library
# the types of the values in <name>.json, each of which may be null
_META_TYPES = {"task": str, "backbone": str, "training": dict, "score": dict}
_META_SHAPES = "task and backbone text, training and score objects"


def content_hash(embeddings: torch.Tensor) -> str:
    """sha256 of a prompt's shape and float32 values: the identity a trained model records."""
    data = embeddings.detach().to("cpu", torch.float32).contiguous()
    digest = hashlib.sha256(str(tuple(data.shape)).encode())
    digest.update(data.numpy().tobytes())
    return "sha256:" + digest.hexdigest()


@dataclass
class SourcePrompt:
    """A soft prompt learned by prompt tuning on a source task.

    Attributes:
        name: library name, e.g. "mnli".
        embeddings: (m, d) float32 tensor.
        task: the task it was trained on.
        backbone: name of the backbone it was trained with (prompts are backbone-specific).
        training: how it was trained (steps, learning rate, data, ...), free-form.
        score: its validation metrics, if known.
    """

    name: str
    embeddings: torch.Tensor
    task: str | None = None
    backbone: str | None = None
    training: dict[str, Any] = field(default_factory=dict)
    score: dict[str, float] | None = None

    def __post_init__(self) -> None:
        check_prompt_name(self.name)
        if not isinstance(self.embeddings, torch.Tensor) or self.embeddings.dim() != 2:
            shape = getattr(self.embeddings, "shape", type(self.embeddings).__name__)
            raise ValueError(f"Source prompt {self.name!r} must be an (m, d) tensor; got {shape}.")
        self.embeddings = self.embeddings.detach().to("cpu", torch.float32).contiguous()
        if not torch.isfinite(self.embeddings).all():
            raise ValueError(f"Source prompt {self.name!r} contains NaN or infinite values.")

    @property
    def length(self) -> int:
        return self.embeddings.shape[0]

    @property
    def hidden_size(self) -> int:
        return self.embeddings.shape[1]

    @property
    def hash(self) -> str:
        return content_hash(self.embeddings)

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.task,
            "backbone": self.backbone,
            "hidden_size": self.hidden_size,
            "length": self.length,
            "training": self.training,
            "score": self.score,
            "hash": self.hash,
        }


def check_compatible(prompts: list[SourcePrompt], hidden_size: int, prompt_length: int | None = None) -> None:
    """Raise a clear error when a prompt's d (or m) does not match the backbone (or config).

    Raises:
        ValueError: naming the prompt, its shape, and what was expected.
    """
    for p in prompts:
        if p.hidden_size != hidden_size:
            raise ValueError(
                f"Source prompt {p.name!r} has d={p.hidden_size} (trained on {p.backbone or 'an unknown backbone'}) "
                f"but this backbone's embeddings have d={hidden_size}. Source prompts only transfer between "
                "backbones with the same embedding space: train one on this backbone with `attempt train-source`."
            )
        if prompt_length is not None and p.length != prompt_length:
            raise ValueError(
                f"Source prompt {p.name!r} has m={p.length} vectors but prompt_length={prompt_length}. "
                f"Set AttemptConfig(prompt_length={p.length}) or use prompts of length {prompt_length}."
            )


class PromptLibrary:
    """A folder of named source prompts: `<name>.safetensors` + `<name>.json` each.

    Example:
        >>> library = PromptLibrary("prompts/")
        >>> library.add(SourcePrompt("mnli", tensor, task="mnli", backbone="t5-base"))
        >>> sources = library.load(["mnli", "qnli"])
    """

    def __init__(self, root: str | Path):
        # hf://owner/name[@revision]: a library on the Hub, read from its downloaded snapshot and never written
        self.hub = hub.parse_location(root, plain_ids=False)
        self.root = hub.local_folder(root, plain_ids=False)

    def _paths(self, name: str) -> tuple[Path, Path]:
        check_prompt_name(name)
        return self.root / f"{name}.safetensors", self.root / f"{name}.json"

    def names(self) -> list[str]:
        """Names of the prompts in the library, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(
            path.name[: -len(".safetensors")]
            for path in self.root.glob("*.safetensors")
            if PROMPT_NAME.fullmatch(path.stem)
        )

    def list(self) -> list[dict[str, Any]]:
        """Metadata of every prompt (name, task, backbone, d, m, training, score, hash), each checked as `get`
        checks it.

        Raises:
            attempt.utils.reading.CorruptFile: a damaged prompt (`scan` lists the others and names it).
        """
        entries, damaged = self.scan()
        if damaged:
            raise reading.CorruptFile(next(iter(damaged.values())))
        return entries

    def scan(self) -> tuple[list[dict[str, Any]], dict[str, str]]:
        """The metadata of every prompt that loads (as `list` gives it), and ``{name: what is wrong and the
        fix}`` for each damaged one: one damaged prompt does not hide the others."""
        entries, damaged = [], {}
        for name in self.names():
            try:
                entries.append(self.get(name).metadata())
            except (ValueError, OSError) as error:  # CorruptFile; an unreadable file
                damaged[name] = str(error)
        return entries, damaged

    def _damaged_fix(self, name: str) -> str:
        """What to do about a damaged prompt `name`."""
        return (
            f"Remove it (`attempt prompts remove {name} --library {self.root}`) and add it again (`attempt "
            "prompts add/import`, or retrain it with `attempt train-source --overwrite`)."
        )

    def __contains__(self, name: str) -> bool:
        return self._paths(name)[0].exists()

    def get(self, name: str) -> SourcePrompt:
        """Load one prompt.

        Raises:
            KeyError: when the library has no such prompt (the message lists the ones it has).
            attempt.utils.reading.CorruptFile (a ValueError): when a file is damaged, its values are not finite, or
                its content does not match its recorded hash; the message says how to replace it.
        """
        tensor_path, meta_path = self._paths(name)
        if not tensor_path.exists():
            have = ", ".join(self.names()) or "none"
            raise KeyError(f"No source prompt {name!r} in library {self.root}. It has: {have}.")
        fix = self._damaged_fix(name)
        try:
            with safe_open(str(tensor_path), framework="pt") as f:
                embeddings = f.get_tensor("prompt")
        except Exception as error:  # noqa: BLE001 - SafetensorError (a damaged file) is no ValueError / OSError
            detail = " ".join(str(error).split())
            raise reading.CorruptFile(
                f"{tensor_path} is damaged or not a prompt file ({detail}). {fix}"
            ) from None
        meta = reading.read_json(meta_path, fix) if meta_path.exists() else {}
        if not isinstance(meta, dict):
            raise reading.CorruptFile(f"{meta_path} should hold a JSON object. {fix}")
        wrong = [
            key
            for key, kind in _META_TYPES.items()
            if meta.get(key) is not None and not isinstance(meta[key], kind)
        ]
        if wrong:
            raise reading.CorruptFile(
                f"{meta_path}: {', '.join(wrong)} of the wrong type (not {_META_SHAPES}). {fix}"
            )
        try:
            prompt = SourcePrompt(
                name=name,
                embeddings=embeddings,
                task=meta.get("task"),
                backbone=meta.get("backbone"),
                training=meta.get("training") or {},
                score=meta.get("score"),
            )
        except ValueError as error:  # NaN / inf values, a tensor that is not (m, d)
            raise reading.CorruptFile(f"{tensor_path}: {error} {fix}") from None
        if meta.get("hash") and meta["hash"] != prompt.hash:
            raise reading.CorruptFile(
                f"{tensor_path} does not match the hash recorded in {meta_path}: the file was changed. {fix}"
            )
        return prompt

    def load(
        self, names: list[str] | str | None = None, hidden_size: int | None = None
    ) -> list[SourcePrompt]:
        """Load prompts by name (all of them when `names` is None), checking d when `hidden_size` is given."""
        if isinstance(names, str):
            names = [names]
        prompts = [self.get(n) for n in (self.names() if names is None else names)]
        if hidden_size is not None:
            check_compatible(prompts, hidden_size)
        return prompts

    def add(self, prompt: SourcePrompt, overwrite: bool = False) -> Path:
        """Write a prompt into the library (atomically). Returns its safetensors path.

        Raises:
            FileExistsError: when the name is taken and overwrite is False.
        """
        with self._locked():
            return self._add(prompt, overwrite)

    def _locked(self):
        """The library's write lock: two writers (say two source runs ending together) take turns, so the
        name check and the two files of a prompt are never interleaved with another writer's."""
        self._check_local()
        return locking.locked(self.root, "prompt library", wait_s=LOCK_WAIT_S, hint="Retry once it is done.")

    def _check_local(self) -> None:
        if self.hub is not None:
            raise PermissionError(
                f"{self.hub} is a library on the Hub (read-only here): pull it into a folder (`attempt prompts pull "
                f"{self.hub} --into DIR`) and write there."
            )

    def _add(self, prompt: SourcePrompt, overwrite: bool) -> Path:
        tensor_path, meta_path = self._paths(prompt.name)
        if tensor_path.exists() and not overwrite:
            raise FileExistsError(
                f"Library {self.root} already has a prompt named {prompt.name!r}. "
                "Pick another name, remove it first, or pass overwrite=True."
            )
        return write_prompt(self.root, prompt)

    def check_writable(self, name: str, overwrite: bool = False) -> None:
        """Raise now what `add` of a prompt named `name` would raise later, so that a training run whose prompt
        could not be stored fails before it trains, not after: an invalid name, a name already taken (unless
        `overwrite`), a library folder that cannot be created or written.

        Raises:
            ValueError: invalid name. FileExistsError: name taken. PermissionError: library not writable.
        """
        check_prompt_name(name)
        self._check_local()
        if name in self and not overwrite:
            raise FileExistsError(
                f"Library {self.root} already has a prompt named {name!r}; training would replace it. Pick another "
                f"prompt name, remove it first (`attempt prompts remove {name}`), or pass --overwrite "
                "(overwrite_prompt=True) to replace it."
            )
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.root):
                pass
        except OSError as error:
            raise PermissionError(
                f"Cannot write to the prompt library {self.root} ({error.strerror or error}). Pick a writable "
                "library folder (--library DIR)."
            ) from None

    def remove(self, name: str) -> None:
        """Delete a prompt. Models trained with it can still be loaded by passing the prompt explicitly."""
        self._paths(name)
        with self._locked():
            self._remove(name)

    def _remove(self, name: str) -> None:
        tensor_path, meta_path = self._paths(name)
        if not tensor_path.exists():
            raise KeyError(
                f"No source prompt {name!r} in library {self.root}. It has: {', '.join(self.names())}."
            )
        tensor_path.unlink()
        if meta_path.exists():
            meta_path.unlink()

    def rename(self, old: str, new: str) -> None:
        """Rename a prompt; its content (and hash) is unchanged."""
        check_prompt_name(new)
        with self._locked():
            prompt = self.get(old)
            if new in self:
                raise FileExistsError(f"Library {self.root} already has a prompt named {new!r}.")
            prompt.name = new
            self._add(prompt, overwrite=False)
            self._remove(old)

    def import_original(self, path: str | Path, name: str, **metadata: Any) -> SourcePrompt:
        """Add a prompt released with the original ATTEMPT code (a torch.save'd [m, d] tensor)."""
        prompt = SourcePrompt(name, read_original_prompt(path), **metadata)
        prompt.training.setdefault("imported_from", str(path))
        self.add(prompt)
        return prompt

    def import_peft(self, path: str | Path, name: str, **metadata: Any) -> SourcePrompt:
        """Add the prompt of a PEFT prompt-tuning adapter (folder or adapter_model.safetensors)."""
        prompt = SourcePrompt(name, read_peft_prompt(path), **metadata)
        prompt.training.setdefault("imported_from", str(path))
        self.add(prompt)
        return prompt

    def export_peft(self, name: str, out_dir: str | Path, **kwargs: Any) -> Path:
        """Write prompt `name` as a PEFT prompt-tuning adapter; see `write_peft_adapter` for kwargs."""
        prompt = self.get(name)
        kwargs.setdefault("base_model_name_or_path", prompt.backbone)
        return write_peft_adapter(prompt.embeddings, out_dir, **kwargs)


def write_prompt(root: str | Path, prompt: SourcePrompt) -> Path:
    """Write `prompt`'s two files into the folder `root`, without the library's lock or name check (for a
    folder no one else writes, such as a saved model's ``sources/``); returns its safetensors path."""
    tensor_path, meta_path = PromptLibrary(root)._paths(prompt.name)
    storage.write_safetensors(tensor_path, {"prompt": prompt.embeddings}, metadata={"name": prompt.name})
    storage.write_json(meta_path, prompt.metadata())
    return tensor_path


def read_original_prompt(path: str | Path) -> torch.Tensor:
    """Read a source prompt saved by the original ATTEMPT code: `torch.save` of a bare [m, d] tensor.

    Loaded with `weights_only=True` (no code from the file runs) onto the CPU, whatever device it was
    pickled on.

    Raises:
        ValueError: when the file holds something else than one 2-D float tensor.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such prompt file: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises several types for foreign pickles
        raise ValueError(
            f"{path} is not a plain torch.save'd tensor ({_refusal(error)}). If you trust the file, load it where "
            "its code may run and torch.save the [m, d] tensor alone, then import that."
        ) from None
    if isinstance(obj, dict) and len(obj) == 1:
        obj = next(iter(obj.values()))
    if not isinstance(obj, torch.Tensor) or obj.dim() != 2 or not obj.is_floating_point():
        shape = getattr(obj, "shape", type(obj).__name__)
        raise ValueError(
            f"{path} should hold one [m, d] float tensor (original ATTEMPT format); found {shape}."
        )
    return obj.to(torch.float32)


def _refusal(error: BaseException) -> str:
    """Why torch's weights_only loading refused a file, in one line (torch's own text runs to six)."""
    found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
    if found:
        return f"it holds pickled code ({found.group(1)}), which would run on loading; refused"
    return " ".join(str(error).split())[:200] or type(error).__name__


def read_peft_prompt(path: str | Path, num_virtual_tokens: int | None = None) -> torch.Tensor:
    """Read the [m, d] prompt of a PEFT prompt-tuning adapter.

    Args:
        path: the adapter folder or its `adapter_model.safetensors`.
        num_virtual_tokens: m; read from `adapter_config.json` when None. A seq2seq adapter stores
            2m rows (encoder and decoder); the first m (the encoder's) are returned.

    Raises:
        ValueError: when the adapter is not prompt tuning or has no "prompt_embeddings", or a file of it is not
            what it should be (not safetensors, not JSON).
    """
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    weights = path / "adapter_model.safetensors" if path.is_dir() else path
    if not weights.is_file():
        raise FileNotFoundError(f"No PEFT adapter weights at {weights} (expected adapter_model.safetensors).")
    fix = "A PEFT adapter is a folder with adapter_config.json and adapter_model.safetensors (or give --format original for a torch.save'd .pt prompt)."  # fmt: skip
    config_path = folder / "adapter_config.json"
    if config_path.exists():
        config = reading.read_json(config_path, fix)
        if not isinstance(config, dict) or config.get("peft_type") not in (None, "PROMPT_TUNING"):
            kind = config.get("peft_type") if isinstance(config, dict) else type(config).__name__
            raise ValueError(f"{config_path} is a {kind} adapter; only PROMPT_TUNING holds a prompt.")
        num_virtual_tokens = num_virtual_tokens or config.get("num_virtual_tokens")
    try:
        with safe_open(str(weights), framework="pt") as f:
            keys = list(f.keys())
            key = next((k for k in keys if k.endswith("prompt_embeddings")), None)
            tensor = f.get_tensor(key).to(torch.float32) if key is not None else None
    except Exception as error:  # noqa: BLE001 - SafetensorError (not safetensors at all) is no ValueError / OSError
        raise reading.CorruptFile(
            f"{weights} is not a safetensors file ({' '.join(str(error).split())}). {fix}"
        ) from None
    if tensor is None:
        raise ValueError(f"{weights} has no 'prompt_embeddings' tensor (keys: {', '.join(keys)}).")
    if num_virtual_tokens is not None and (
        isinstance(num_virtual_tokens, bool) or not isinstance(num_virtual_tokens, int)
    ):
        raise ValueError(
            f"{config_path}: num_virtual_tokens must be a whole number, got {num_virtual_tokens!r}."
        )
    if num_virtual_tokens is not None:
        tensor = tensor[:num_virtual_tokens]
    return tensor


def write_peft_adapter(
    embeddings: torch.Tensor,
    out_dir: str | Path,
    base_model_name_or_path: str | None = None,
    task_type: str = "CAUSAL_LM",
) -> Path:
    """Write an [m, d] prompt as a PEFT prompt-tuning adapter that `PeftModel.from_pretrained` loads.

    Args:
        embeddings: (m, d) prompt.
        out_dir: adapter folder to write (replaced atomically if it exists).
        base_model_name_or_path: the backbone the prompt belongs to.
        task_type: PEFT task type; "SEQ_2_SEQ_LM" stores the prompt twice (PEFT's encoder and decoder rows).

    Returns:
        The adapter folder.
    """
    if task_type not in PEFT_TASK_TYPES:
        raise ValueError(
            f"task_type={task_type!r} is not supported. Choose one of: {', '.join(PEFT_TASK_TYPES)}."
        )
    m, d = embeddings.shape
    submodules = 2 if task_type == "SEQ_2_SEQ_LM" else 1
    config = {
        "peft_type": "PROMPT_TUNING",
        "task_type": task_type,
        "num_virtual_tokens": m,
        "token_dim": d,
        "num_transformer_submodules": submodules,
        "prompt_tuning_init": "RANDOM",
        "base_model_name_or_path": base_model_name_or_path,
        "inference_mode": True,
    }
    rows = embeddings.detach().to("cpu", torch.float32).repeat(submodules, 1)  # (submodules·m, d)
    out_dir = Path(out_dir)
    with storage.atomic_directory(out_dir) as tmp:
        storage.write_json(tmp / "adapter_config.json", config)
        storage.write_safetensors(tmp / "adapter_model.safetensors", {"prompt_embeddings": rows})
    return out_dir


def random_vocab_prompt(embedding_weight: torch.Tensor, length: int, seed: int = 0) -> torch.Tensor:
    """(m, d) rows of the vocabulary embedding matrix, sampled without replacement by `seed`."""
    generator = torch.Generator().manual_seed(seed)
    vocab = embedding_weight.shape[0]
    # the 5,000 first ids of most vocabularies are frequent tokens (Lester et al. sample from those)
    pool = min(vocab, 5000)
    ids = torch.randperm(pool, generator=generator)[:length]
    if length > pool:
        ids = torch.randint(0, vocab, (length,), generator=generator)
    return embedding_weight.detach()[ids].to("cpu", torch.float32).clone()


__all__ = [
    "PromptLibrary",
    "SourcePrompt",
    "check_compatible",
    "content_hash",
    "random_vocab_prompt",
    "read_original_prompt",
    "read_peft_prompt",
    "write_peft_adapter",
    "write_prompt",
]
