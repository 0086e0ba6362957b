"""AttemptModel: a frozen backbone, the attentional mixture, and (encoder-only) a head.

The wrappers in `seq2seq.py`, `causal.py` and `encoder.py` differ only in how the prompted embeddings reach
the backbone; everything else — building the mixture, freezing, parameter groups, save/load — lives here.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from transformers.utils import ModelOutput

from attempt.config import AttemptConfig
from attempt.mixture import AttentionalMixture
from attempt.modeling import families
from attempt.prompts.library import (
    PromptLibrary,
    SourcePrompt,
    check_compatible,
    random_vocab_prompt,
    write_prompt,
)
from attempt.tasks.user import register_definitions, registered_definitions, with_data_paths
from attempt.utils import hub, reading, storage

CONFIG_FILE = "attempt_config.json"
WEIGHTS_FILE = "attempt_model.safetensors"
SOURCES_DIR = "sources"  # save_pretrained(include_sources=True): the source prompts, as a prompt library
TASK_DEFINITIONS_KEY = "task_definitions"  # in CONFIG_FILE: the definitions of the model's own tasks
FORMAT_VERSION = 1


@dataclass
class AttemptOutput(ModelOutput):
    """What `AttemptModel.forward` returns: a `transformers.utils.ModelOutput`, so it reads by attribute, by key
    (``out["loss"]``) or by position (``out[0]``, the fields that are not None), as `transformers.Trainer` does.

    Attributes:
        loss: scalar training loss when labels were given.
        logits: (B, L, V) over the input/label positions (LMs), (B, C) for classification heads.
        attention_weights: (B, t+1) mixture weights over [sources..., target]; None for prompt tuning.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    attention_weights: torch.Tensor | None = None


class AttemptModel(nn.Module):
    """ATTEMPT (or plain prompt tuning) over a frozen Hugging Face backbone.

    Build one with `AttemptModel.from_backbone(...)`, which picks the wrapper for the backbone's family
    (`attempt.modeling.families`).
    Only the target prompts, the attention module and (encoder-only) the head are trainable.
    """

    family: ClassVar[str] = ""
    config_file: ClassVar[str] = CONFIG_FILE
    weights_file: ClassVar[str] = WEIGHTS_FILE

    def __init__(
        self,
        backbone: nn.Module,
        config: AttemptConfig,
        source_prompts: list[SourcePrompt] | None = None,
        tokenizer: Any = None,
        backbone_name: str | None = None,
        initialise: bool = True,
    ):
        super().__init__()
        source_prompts = list(source_prompts or [])
        self.backbone = backbone
        self.backbone.requires_grad_(False)
        self.backbone_name = (
            backbone_name or getattr(backbone.config, "_name_or_path", None) or type(backbone).__name__
        )
        embedding = backbone.get_input_embeddings()
        hidden_size = embedding.weight.shape[1]
        check_compatible(source_prompts, hidden_size, config.prompt_length)

        if config.target_init is None:
            config = dataclasses.replace(config, target_init="source" if source_prompts else "vocab")
        self.config = config
        target_init = (
            self._initial_target(config, source_prompts, embedding.weight, tokenizer)
            if initialise
            else torch.zeros(config.prompt_length, hidden_size)
        )
        mixed = source_prompts if config.method == "attempt" else []
        stacked = (
            torch.stack([p.embeddings for p in mixed])
            if mixed
            else torch.zeros(0, config.prompt_length, hidden_size)
        )  # (t, m, d)
        with torch.random.fork_rng():
            torch.manual_seed(config.seed)
            self.mixture = AttentionalMixture(
                config, hidden_size, stacked, target_init, [p.name for p in mixed]
            )
            self.head = self._build_head(hidden_size)
        if (
            config.temperature == "auto"
        ):  # fixed now, from these sources: a saved model reloads with the same T
            self.config = dataclasses.replace(config, temperature=self.mixture.temperature)
        self.source_info = [{"name": p.name, "hash": p.hash, "task": p.task} for p in mixed]

    # -- construction -----------------------------------------------------------------------------------
    @classmethod
    def from_backbone(
        cls,
        backbone: nn.Module,
        source_prompts: list[SourcePrompt] | None = None,
        config: AttemptConfig | None = None,
        tasks: list[str] | None = None,
        tokenizer: Any = None,
        backbone_name: str | None = None,
        **config_fields: Any,
    ) -> AttemptModel:
        """Wrap `backbone` with the wrapper of its family (seq2seq, causal or encoder).

        Args:
            backbone: a Hugging Face model (T5/BART, a causal LM, or an encoder such as BERT).
            source_prompts: frozen source prompts (e.g. `PromptLibrary(dir).load([...])`).
            config: an AttemptConfig; `tasks` and `config_fields` override its fields.
            tasks: target task names (one target prompt each).
            tokenizer: needed only for target_init="text".
            backbone_name: recorded in the saved config (defaults to the backbone's name_or_path).

        Returns:
            An AttemptModel subclass instance with a frozen backbone.
        """
        config = config or AttemptConfig()
        if tasks is not None:
            config_fields["tasks"] = tuple(tasks)
        if config_fields:
            config = AttemptConfig.from_dict({**config.to_dict(), **config_fields})
        wrapper = families.class_for("attempt", backbone.config) if cls is AttemptModel else cls
        return wrapper(backbone, config, source_prompts, tokenizer=tokenizer, backbone_name=backbone_name)

    @staticmethod
    def _initial_target(config, sources, embedding_weight, tokenizer) -> torch.Tensor:
        m = config.prompt_length
        if config.target_init == "source":
            if not sources:
                raise ValueError(
                    "target_init='source' needs source prompts; pass some or use target_init='vocab'."
                )
            name = config.target_init_source or sources[0].name
            by_name = {p.name: p for p in sources}
            if name not in by_name:
                raise ValueError(
                    f"target_init_source={name!r} is not among the source prompts: {list(by_name)}."
                )
            return by_name[name].embeddings.clone()
        if config.target_init == "vocab":
            return random_vocab_prompt(embedding_weight, m, seed=config.seed)
        if tokenizer is None:
            raise ValueError("target_init='text' needs the tokenizer: pass tokenizer=... to from_backbone.")
        ids = tokenizer(config.target_init_text, add_special_tokens=False)["input_ids"]
        if not ids:
            raise ValueError(f"target_init_text={config.target_init_text!r} tokenises to nothing.")
        ids = (ids * (m // len(ids) + 1))[:m]
        return embedding_weight.detach()[torch.tensor(ids)].float().clone()

    def _build_head(self, hidden_size: int) -> nn.Module | None:
        return None

    # -- the shared prompting step ----------------------------------------------------------------------
    @property
    def tasks(self) -> tuple[str, ...]:
        return self.config.tasks

    @property
    def prompt_length(self) -> int:
        return self.config.prompt_length

    def task_ids(self, names: list[str] | str) -> torch.Tensor:
        """(B,) task indices for task names, on the model's device."""
        names = [names] if isinstance(names, str) else names
        unknown = sorted(set(names) - set(self.tasks))
        if unknown:
            raise ValueError(f"Unknown task(s) {unknown} for this model. Its tasks: {', '.join(self.tasks)}.")
        index = {t: i for i, t in enumerate(self.tasks)}
        return torch.tensor([index[n] for n in names], device=self.device)

    @property
    def device(self) -> torch.device:
        return self.mixture.target_prompts.device

    def prompted_inputs(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        task_ids: torch.Tensor | None = None,
        read_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Embed the input and prepend each instance's prompt.

        Args:
            read_mask: (B, L) the tokens the attention pools over (default: attention_mask). A decoder-only
                training row holds its label words after the input; the attention must not read them, or it
                would see the answer in training and not at inference.

        Returns:
            inputs_embeds: (B, m+L, d); attention_mask: (B, m+L); weights: (B, t+1) or None.
        """
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if task_ids is not None and task_ids.numel() and int(task_ids.max()) >= len(self.tasks):
            raise ValueError(
                f"task_ids go up to {int(task_ids.max())} but this model has {len(self.tasks)} task(s)."
            )
        embeds = self.backbone.get_input_embeddings()(input_ids)  # (B, L, d)
        read = attention_mask if read_mask is None else read_mask
        prompt, weights = self.mixture(embeds, read, task_ids)  # (B, m, d), (B, t+1)
        self._check_length(input_ids.shape[1])
        inputs_embeds = torch.cat([prompt.to(embeds.dtype), embeds], dim=1)  # (B, m+L, d)
        prompt_mask = attention_mask.new_ones(input_ids.shape[0], self.prompt_length)
        return inputs_embeds, torch.cat([prompt_mask, attention_mask], dim=1), weights

    def _check_length(self, input_length: int) -> None:
        limit = getattr(self.backbone.config, "max_position_embeddings", None)
        if self.family != "seq2seq" and limit and self.prompt_length + input_length > limit:
            raise ValueError(
                f"prompt_length {self.prompt_length} + input length {input_length} exceeds the backbone's "
                f"{limit} positions. Truncate inputs to at most {limit - self.prompt_length} tokens."
            )

    def generate(self, input_ids, attention_mask=None, task_ids=None, **generate_kwargs):
        raise NotImplementedError(f"{type(self).__name__} ({self.family} backbone) does not generate text.")

    def score_candidates(self, input_ids, attention_mask=None, task_ids=None, candidates=()) -> torch.Tensor:
        """(B, C) log-likelihood of each candidate continuation (rank classification); LM backbones only."""
        raise NotImplementedError(f"{type(self).__name__} ({self.family} backbone) classifies with its head.")

    # -- trainable parameters ---------------------------------------------------------------------------
    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Everything that is not the frozen backbone or the source prompts: what save_pretrained writes."""
        state = {f"mixture.{k}": v for k, v in self.mixture.state_dict().items()}
        if self.head is not None:
            state.update({f"head.{k}": v for k, v in self.head.state_dict().items()})
        return state

    def parameter_groups(
        self,
        prompt_lr: float,
        attention_lr: float | None = None,
        head_lr: float | None = None,
        weight_decay: float = 0.0,
    ) -> list[dict[str, Any]]:
        """Optimizer parameter groups with separate learning rates (each one really applies).

        Args:
            prompt_lr: learning rate of the target prompt(s).
            attention_lr: learning rate of the attention module (defaults to prompt_lr).
            head_lr: learning rate of the head, for encoder-only backbones (defaults to attention_lr).
            weight_decay: applied to the attention and head weights, never to prompts or LayerNorm.
        """
        attention_lr = prompt_lr if attention_lr is None else attention_lr
        head_lr = attention_lr if head_lr is None else head_lr
        groups = [
            {"name": "prompt", "params": [self.mixture.target_prompts], "lr": prompt_lr, "weight_decay": 0.0}
        ]
        if self.mixture.attention is not None:
            attention = self.mixture.attention
            decayed = [attention.down.weight, attention.up.weight]
            norm = [p for p in attention.norm.parameters() if p.requires_grad]
            groups.append(
                {"name": "attention", "params": decayed, "lr": attention_lr, "weight_decay": weight_decay}
            )
            if norm:
                groups.append(
                    {"name": "attention_norm", "params": norm, "lr": attention_lr, "weight_decay": 0.0}
                )
        if self.head is not None:
            groups.append(
                {
                    "name": "head",
                    "params": list(self.head.parameters()),
                    "lr": head_lr,
                    "weight_decay": weight_decay,
                }
            )
        return groups

    def num_parameters_by_part(self) -> dict[str, int]:
        """Trainable parameter counts: prompt, attention, head; and the frozen backbone's total."""
        count = lambda params: sum(p.numel() for p in params if p.requires_grad)  # noqa: E731
        parts = {"prompt": self.mixture.target_prompts.numel(), "attention": 0, "head": 0}
        if self.mixture.attention is not None:
            parts["attention"] = count(self.mixture.attention.parameters())
        if self.head is not None:
            parts["head"] = count(self.head.parameters())
        parts["backbone"] = sum(p.numel() for p in self.backbone.parameters())
        return parts

    def print_trainable_parameters(self) -> str:
        """Print (and return) the trainable parameter count, with its breakdown."""
        parts = self.num_parameters_by_part()
        trainable = sum(parts[k] for k in ("prompt", "attention", "head"))
        total = trainable + parts["backbone"] + self.mixture.source_prompts.numel()
        line = (
            f"trainable params: {trainable:,} || all params: {total:,} || trainable%: {100 * trainable / total:.4f}"
            f" (prompts {parts['prompt']:,} = {len(self.tasks)} task(s) x {self.prompt_length} x "
            f"{self.mixture.hidden_size}, attention {parts['attention']:,}, head {parts['head']:,})"
        )
        print(line)
        return line

    # -- modularity ---------------------------------------------------------------------------------------
    def add_source_prompt(self, prompt: SourcePrompt) -> None:
        """Add a source prompt to a (trained) model. The attention module is kept as it is: its weights do
        not depend on the number of prompts, so the new prompt is scored at once; a short continued training
        lets the mixture learn to use it."""
        check_compatible([prompt], self.mixture.hidden_size, self.prompt_length)
        self.mixture.add_source_prompt(prompt.name, prompt.embeddings.to(self.device))
        self.source_info.append({"name": prompt.name, "hash": prompt.hash, "task": prompt.task})

    def remove_source_prompt(self, name: str) -> None:
        """Remove a source prompt; the attention renormalises over the remaining prompts."""
        self.mixture.remove_source_prompt(name)
        self.source_info = [s for s in self.source_info if s["name"] != name]

    # -- save / load --------------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path, include_sources: bool = False) -> Path:
        """Write `attempt_config.json` and `attempt_model.safetensors` (trainable weights only), atomically.

        The config records the source prompts' names and content hashes, and the definitions of the model's
        tasks that are your own (`attempt.tasks.user`, data paths relative to `directory`), so `from_pretrained`
        registers them again. With `include_sources` the prompts themselves are copied into ``sources/`` (a
        prompt library), so the folder alone is enough to load the model: `from_pretrained` reads them from
        there when it is not given others.
        """
        state = self.trainable_state_dict()
        meta = {
            "format_version": FORMAT_VERSION,
            "family": self.family,
            "backbone": self.backbone_name,
            "hidden_size": self.mixture.hidden_size,
            "attempt": self.config.to_dict(),
            "source_prompts": self.source_info,
            "weights": sorted(state),
        }
        definitions = _user_task_definitions(self.tasks, Path(directory))
        if definitions:  # only then: a model of built-in tasks saves what it always saved
            meta[TASK_DEFINITIONS_KEY] = definitions
        extra = (lambda folder: self._write_sources(folder / SOURCES_DIR)) if include_sources else None
        return storage.write_model_directory(directory, CONFIG_FILE, meta, WEIGHTS_FILE, state, extra=extra)

    def _write_sources(self, folder: Path) -> None:
        """Copy the mixed source prompts into `folder`, each checked against the hash recorded at build time
        (a model cast to another dtype no longer holds the prompts it was trained with)."""
        for index, info in enumerate(self.source_info):
            prompt = SourcePrompt(
                info["name"],
                self.mixture.source_prompts[index],
                task=info.get("task"),
                backbone=self.backbone_name,
            )
            if prompt.hash != info["hash"]:
                raise ValueError(
                    f"Source prompt {info['name']!r} in this model no longer matches its recorded hash (was the model "
                    "cast to another dtype?). Save it in float32, or without include_sources."
                )
            write_prompt(folder, prompt)

    @classmethod
    def from_pretrained(
        cls,
        backbone: nn.Module,
        directory: str | Path,
        source_prompts: list[SourcePrompt] | PromptLibrary | str | Path | None = None,
    ) -> AttemptModel:
        """Load a model saved by `save_pretrained` onto `backbone`.

        Args:
            backbone: the same backbone it was trained with.
            directory: the saved folder, or a Hub repository pushed by `attempt push` (``hf://owner/name[@revision]``,
                or ``owner/name`` when no such local folder exists), downloaded and checked like a local one.
            source_prompts: the source prompts it was trained with, as a list or a PromptLibrary (or its path);
                None: the copies in ``directory/sources/`` when it has them (``include_sources=True``).

        Raises:
            FileNotFoundError: when the folder lacks the config or weights.
            ValueError: when a source prompt is missing or its content hash differs, or d does not match.
            attempt.tasks.user.TaskFileError: a task of the model's own is named like a different registered one.
        """
        directory = hub.local_folder(directory)  # hf://owner/name or owner/name: a pushed run's files
        for name in (CONFIG_FILE, WEIGHTS_FILE):
            if not (directory / name).is_file():
                raise FileNotFoundError(f"{directory} has no {name}: it is not a saved AttemptModel.")
        if source_prompts is None and (directory / SOURCES_DIR).is_dir():
            source_prompts = directory / SOURCES_DIR  # checked against the recorded hashes like any other
        fix = f"The saved model in {directory} is damaged: save or train it again."
        meta = reading.read_json(directory / CONFIG_FILE, fix)
        if meta.get(TASK_DEFINITIONS_KEY):  # its own tasks, so predicting with it finds them
            register_definitions(
                meta[TASK_DEFINITIONS_KEY],
                f"{directory / CONFIG_FILE} ({TASK_DEFINITIONS_KEY})",
                base=directory,
            )
        config = AttemptConfig.from_dict(meta["attempt"])
        hidden = backbone.get_input_embeddings().weight.shape[1]
        if hidden != meta["hidden_size"]:
            raise ValueError(
                f"{directory} was trained on a backbone with d={meta['hidden_size']} ({meta['backbone']}); "
                f"this backbone has d={hidden}. Load it onto {meta['backbone']}."
            )
        prompts = _match_sources(
            meta["source_prompts"], source_prompts, directory, hidden, config.prompt_length
        )
        wrapper = families.class_for("attempt", backbone.config)
        if wrapper.family != meta["family"]:
            raise ValueError(
                f"{directory} holds a {meta['family']} model; this backbone is {wrapper.family}."
            )
        model = wrapper(backbone, config, prompts, backbone_name=meta["backbone"], initialise=False)
        state = reading.load_safetensors(directory / WEIGHTS_FILE, fix, sha256=meta.get(reading.HASH_KEY))
        expected = set(model.trainable_state_dict())
        if set(state) != expected:
            raise ValueError(
                f"{directory / WEIGHTS_FILE} has keys {sorted(state)}; expected {sorted(expected)}."
            )
        model.mixture.load_state_dict(
            {k[len("mixture.") :]: v for k, v in state.items() if k.startswith("mixture.")}
        )
        if model.head is not None:
            model.head.load_state_dict(
                {k[len("head.") :]: v for k, v in state.items() if k.startswith("head.")}
            )
        # the trained part joins the backbone; the backbone stays as it is (one spread over devices by a
        # device_map, with weights offloaded to the CPU or disk, cannot be moved as a whole)
        for name, part in model.named_children():
            if name != "backbone":
                part.to(backbone.device)
        return model


def _user_task_definitions(tasks: list[str], directory: Path) -> dict[str, Any]:
    """The registered definitions of those of `tasks` that are your own, their data paths relative to
    `directory` (so the saved folder can move with its data, as a run folder does)."""

    def relative(path: str) -> str:
        try:
            return os.path.relpath(Path(path).resolve(), directory.resolve())
        except ValueError:  # another drive (Windows): no relative path exists
            return path

    return with_data_paths(registered_definitions(tasks), relative) or {}


def _match_sources(
    recorded: list[dict], given, directory: Path, hidden_size: int, length: int
) -> list[SourcePrompt]:
    if not recorded:
        return []
    if given is None:
        names = ", ".join(r["name"] for r in recorded)
        raise ValueError(
            f"{directory} was trained with source prompts [{names}]; pass them: "
            f"AttemptModel.from_pretrained(backbone, dir, source_prompts=PromptLibrary(path))."
        )
    if isinstance(given, (str, Path)):
        given = PromptLibrary(given)
    if isinstance(given, PromptLibrary):
        given = given.load([r["name"] for r in recorded])
    by_name = {p.name: p for p in given}
    prompts = []
    for r in recorded:
        if r["name"] not in by_name:
            raise ValueError(f"Source prompt {r['name']!r} that {directory} was trained with is missing.")
        prompt = by_name[r["name"]]
        if (prompt.length, prompt.hidden_size) != (
            length,
            hidden_size,
        ):  # say which dimension is off, not "hash"
            raise ValueError(
                f"Source prompt {r['name']!r} has shape (m, d) = ({prompt.length}, {prompt.hidden_size}) but "
                f"{directory} was trained with one of ({length}, {hidden_size}) (d: expected {hidden_size}, found "
                f"{prompt.hidden_size}; m: expected {length}, found {prompt.length}). It was replaced since: put the "
                "original prompt back."
            )
        if prompt.hash != r["hash"]:
            raise ValueError(
                f"Source prompt {r['name']!r} differs from the one {directory} was trained with "
                f"(hash {prompt.hash[:19]}… vs recorded {r['hash'][:19]}…). Load the original prompt."
            )
        prompts.append(prompt)
    return prompts
