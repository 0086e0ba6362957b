"""The comparison methods of the paper behind the AttemptModel interface: full fine-tuning and LoRA.

    from attempt.modeling.finetune import FineTuneModel
    model = FineTuneModel.from_backbone(backbone, mode="lora", tasks=["rte"])   # or mode="finetune"
    out = model(input_ids, attention_mask, labels=labels)                      # AttemptOutput(loss, logits, None)

Seq2seq and causal backbones are trained with their own LM loss; encoder-only backbones get the same
mean-pooled classification/regression heads as `EncoderAttemptModel` (`attempt.modeling.heads`). As for
AttemptModel, one small subclass per backbone family holds what differs between families. LoRA goes through PEFT
(`get_peft_model` with a `LoraConfig`); only the LoRA matrices (and the head) are trained and saved.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from attempt.backbones.resolve import family_of
from attempt.config import HEAD_POOLINGS, config_from_dict, labels_per_task
from attempt.modeling import families
from attempt.modeling.base import AttemptModel, AttemptOutput
from attempt.modeling.causal import pad_token_id
from attempt.modeling.heads import ClassificationHeads, per_task_loss, pool
from attempt.modeling.padding import check_left_padded, positions
from attempt.modeling.scoring import (
    causal_candidate_log_likelihoods,
    causal_label_loss,
    label_log_likelihood,
    seq2seq_candidate_log_likelihoods,
    takes_argument,
)
from attempt.utils import storage
from attempt.utils.reading import HASH_KEY, load_safetensors, read_json

CONFIG_FILE = "finetune_config.json"
WEIGHTS_FILE = "finetune_model.safetensors"
FORMAT_VERSION = 1
MODES = ("finetune", "lora")

# LoRA on the attention's query and value projections (the LoRA paper's choice), per architecture.
DEFAULT_TARGET_MODULES: dict[str, list[str]] = {
    "t5": ["q", "v"],
    "mt5": ["q", "v"],
    "bart": ["q_proj", "v_proj"],
    "llama": ["q_proj", "v_proj"],
    "qwen2": ["q_proj", "v_proj"],
    "mistral": ["q_proj", "v_proj"],
    "gemma": ["q_proj", "v_proj"],
    "gpt2": ["c_attn"],
    "bert": ["query", "value"],
    "roberta": ["query", "value"],
}


@dataclass
class FineTuneConfig:
    """How a FineTuneModel is built.

    Attributes:
        mode: "finetune" (every backbone weight is trained) or "lora" (low-rank adapters via PEFT).
        tasks: target task names (encoder-only: one head each).
        num_labels: head outputs for encoder-only backbones (1 = regression); an int or {task: n}.
        lora_rank, lora_alpha, lora_dropout: the LoRA hyper-parameters r, alpha and dropout.
        target_modules: modules that get LoRA adapters; None picks the query/value projections of the
            backbone's architecture (T5 "q","v"; Llama "q_proj","v_proj"; GPT-2 "c_attn"; BERT "query","value").
        head_pooling: "mean" over the non-padding tokens or "cls" (encoder-only).
        seed: seed of the new weights (head, LoRA).
    """

    mode: str = "finetune"
    tasks: tuple[str, ...] = ("default",)
    num_labels: int | dict[str, int] | None = None
    lora_rank: int = 8
    lora_alpha: float = 16
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] | None = None
    head_pooling: str = "mean"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode={self.mode!r} is not valid. Choose one of: {', '.join(MODES)}.")
        if self.head_pooling not in HEAD_POOLINGS:
            raise ValueError(f"head_pooling={self.head_pooling!r}; choose one of {', '.join(HEAD_POOLINGS)}.")
        self.tasks = (self.tasks,) if isinstance(self.tasks, str) else tuple(self.tasks)
        if not self.tasks or len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"tasks must name each target task once, got {list(self.tasks)}.")
        if self.target_modules is not None:
            self.target_modules = (
                (self.target_modules,) if isinstance(self.target_modules, str) else tuple(self.target_modules)
            )
        if int(self.lora_rank) < 1:
            raise ValueError(f"lora_rank must be >= 1, got {self.lora_rank}.")
        labels_per_task(self.num_labels, self.tasks)  # validates

    def labels_per_task(self) -> dict[str, int]:
        return labels_per_task(self.num_labels, self.tasks)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["tasks"] = list(self.tasks)
        if self.target_modules is not None:
            data["target_modules"] = list(self.target_modules)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FineTuneConfig:
        return config_from_dict(cls, data)


def default_target_modules(backbone_config: Any) -> list[str]:
    """The LoRA target modules for a backbone config (query and value projections)."""
    model_type = getattr(backbone_config, "model_type", None)
    if model_type not in DEFAULT_TARGET_MODULES:
        raise ValueError(
            f"No default LoRA target modules for model_type={model_type!r}; pass target_modules=[...] "
            f"(the names of its attention projections, e.g. ['q_proj', 'v_proj'])."
        )
    return list(DEFAULT_TARGET_MODULES[model_type])


class FineTuneModel(nn.Module):
    """Full fine-tuning or LoRA over a Hugging Face backbone, with AttemptModel's interface.

    Build one with `FineTuneModel.from_backbone(...)`, which picks the subclass of the backbone's family
    (`Seq2SeqFineTuneModel`, `CausalFineTuneModel`, `EncoderFineTuneModel`), as `AttemptModel.from_backbone`
    does. `forward` returns an `AttemptOutput` whose `attention_weights` is None.
    """

    family: ClassVar[str] = ""  # "seq2seq", "causal" or "encoder": set by each subclass
    config_file: ClassVar[str] = CONFIG_FILE
    weights_file: ClassVar[str] = WEIGHTS_FILE

    def __init__(self, backbone: nn.Module, config: FineTuneConfig, backbone_name: str | None = None):
        super().__init__()
        family = family_of(backbone.config)
        if family != self.family:
            raise TypeError(
                f"{type(self).__name__} wraps {self.family or 'no'} backbones; this one is {family}. Build it with "
                "FineTuneModel.from_backbone(backbone, ...), which picks the class of the backbone's family."
            )
        self.config = config
        self.backbone_name = (
            backbone_name or getattr(backbone.config, "_name_or_path", None) or type(backbone).__name__
        )
        self.hidden_size = backbone.get_input_embeddings().weight.shape[1]
        with torch.random.fork_rng():
            torch.manual_seed(config.seed)
            if config.mode == "finetune":
                backbone.requires_grad_(True)
            else:
                backbone = self._with_lora(backbone, config)
            self.head = self._build_head()
        self.backbone = backbone

    @staticmethod
    def _with_lora(backbone: nn.Module, config: FineTuneConfig) -> nn.Module:
        from peft import LoraConfig, get_peft_model

        targets = (
            list(config.target_modules) if config.target_modules else default_target_modules(backbone.config)
        )
        lora = LoraConfig(
            r=int(config.lora_rank),
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=targets,
            bias="none",
            fan_in_fan_out=getattr(backbone.config, "model_type", None) == "gpt2",  # GPT-2's Conv1D layers
        )
        return get_peft_model(backbone, lora)  # freezes everything but the adapters

    def _build_head(self) -> nn.Module | None:
        return None

    @classmethod
    def from_backbone(
        cls,
        backbone: nn.Module,
        mode: str = "finetune",
        tasks: list[str] | tuple[str, ...] = ("rte",),
        num_labels: int | dict[str, int] | None = None,
        lora_rank: int = 8,
        lora_alpha: float = 16,
        lora_dropout: float = 0.0,
        target_modules: list[str] | None = None,
        backbone_name: str | None = None,
        **config_fields: Any,
    ) -> FineTuneModel:
        """Wrap `backbone` for full fine-tuning (mode="finetune") or LoRA (mode="lora").

        The backbone is changed in place (its weights are unfrozen, or LoRA layers are injected): pass a
        fresh copy when it is also used elsewhere. Other FineTuneConfig fields (head_pooling, seed) can be
        passed as keywords.
        """
        config = FineTuneConfig(
            mode=mode,
            tasks=tuple(tasks),
            num_labels=num_labels,
            lora_rank=lora_rank,
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            target_modules=target_modules,
            **config_fields,
        )
        subclass = families.class_for("finetune", backbone.config) if cls is FineTuneModel else cls
        return subclass(backbone, config, backbone_name=backbone_name)

    # -- the shared interface -----------------------------------------------------------------------
    @property
    def tasks(self) -> tuple[str, ...]:
        return self.config.tasks

    @property
    def device(self) -> torch.device:
        return next(self.backbone.parameters()).device

    task_ids = AttemptModel.task_ids  # the same lookup over self.tasks, on self.device

    def _inner(self) -> nn.Module:
        """The Hugging Face model itself (under the PEFT wrapper in LoRA mode)."""
        get_base = getattr(self.backbone, "get_base_model", None)
        return get_base() if callable(get_base) else self.backbone

    def _embedded(self, input_ids, attention_mask) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
        """For candidate scoring: the inner model (LoRA layers are injected in place, so it runs with them),
        the (B, L, d) input embeddings and the mask (all ones when None)."""
        inner = self._inner()
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        return inner, inner.get_input_embeddings()(input_ids), mask

    def forward(
        self, input_ids, attention_mask=None, labels=None, task_ids=None, token_type_ids=None, loss_only=False,
        **kwargs,
    ) -> AttemptOutput:  # fmt: skip
        """Args: input_ids/attention_mask (B, L); labels (B, T) token ids with -100 where no loss; task_ids,
        token_type_ids and loss_only are accepted for the shared interface (one LM serves every task, without
        segments; a seq2seq decoder's logits cover the label tokens only, so there is nothing to skip).

        Returns: AttemptOutput(loss, logits, None), logits as the backbone gives them.
        """
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        out = self.backbone(input_ids=input_ids, attention_mask=attention_mask, labels=labels, **kwargs)
        return AttemptOutput(loss=out.loss, logits=out.logits)

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, task_ids=None, **generate_kwargs) -> torch.Tensor:
        """Generated ids (seq2seq: decoder ids; causal: only the new ids, inputs LEFT-padded)."""
        raise NotImplementedError(f"{type(self).__name__} ({self.family} backbone) does not generate text.")

    def sequence_log_likelihood(
        self, input_ids, attention_mask=None, labels=None, task_ids=None
    ) -> torch.Tensor:
        """(B,) sum of log p(label tokens | input), as AttemptModel's (for rank classification)."""
        raise NotImplementedError(f"{type(self).__name__} ({self.family} backbone) classifies with its head.")

    @torch.no_grad()
    def score_candidates(self, input_ids, attention_mask=None, task_ids=None, candidates=()) -> torch.Tensor:
        """(B, C) log p(candidate | input), the input read once (see `attempt.modeling.scoring`)."""
        raise NotImplementedError(f"{type(self).__name__} ({self.family} backbone) classifies with its head.")

    # -- trainable parameters ---------------------------------------------------------------------
    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The trained weights (finetune: every backbone weight, tied ones once; lora: the adapters) + head."""
        return {name: p for name, p in self.named_parameters() if p.requires_grad}

    def parameter_groups(
        self,
        prompt_lr: float,
        attention_lr: float | None = None,
        head_lr: float | None = None,
        weight_decay: float = 0.0,
    ) -> list[dict[str, Any]]:
        """Optimizer groups. prompt_lr is the learning rate of everything trained in the backbone (all
        weights or the LoRA matrices); head_lr that of the head (defaults to attention_lr, then prompt_lr).
        Weight decay applies to matrices only, never to biases or norms."""
        head_lr = (prompt_lr if attention_lr is None else attention_lr) if head_lr is None else head_lr
        trained = [p for p in self.backbone.parameters() if p.requires_grad]
        groups = [
            {
                "name": "backbone",
                "params": [p for p in trained if p.dim() >= 2],
                "lr": prompt_lr,
                "weight_decay": weight_decay,
            },
            {
                "name": "backbone_no_decay",
                "params": [p for p in trained if p.dim() < 2],
                "lr": prompt_lr,
                "weight_decay": 0.0,
            },
        ]
        if self.head is not None:
            groups.append(
                {
                    "name": "head",
                    "params": list(self.head.parameters()),
                    "lr": head_lr,
                    "weight_decay": weight_decay,
                }
            )
        return [g for g in groups if g["params"]]

    def num_parameters_by_part(self) -> dict[str, int]:
        """trainable (backbone part + head), head, and backbone (all its weights, LoRA included)."""
        head = sum(p.numel() for p in self.head.parameters()) if self.head is not None else 0
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return {
            "trainable": trainable,
            "head": head,
            "backbone": sum(p.numel() for p in self.backbone.parameters()),
        }

    def print_trainable_parameters(self) -> str:
        """Print (and return) the trainable parameter count."""
        parts = self.num_parameters_by_part()
        total = parts["backbone"] + parts["head"]
        line = (
            f"trainable params: {parts['trainable']:,} || all params: {total:,} || "
            f"trainable%: {100 * parts['trainable'] / total:.4f} ({self.config.mode}, head {parts['head']:,})"
        )
        print(line)
        return line

    # -- save / load ------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write `finetune_config.json` and `finetune_model.safetensors` (the trained weights), atomically."""
        state = self.trainable_state_dict()
        meta = {
            "format_version": FORMAT_VERSION,
            "family": self.family,
            "backbone": self.backbone_name,
            "hidden_size": self.hidden_size,
            "finetune": self.config.to_dict(),
            "weights": sorted(state),
        }
        return storage.write_model_directory(directory, CONFIG_FILE, meta, WEIGHTS_FILE, state)

    @classmethod
    def from_pretrained(cls, backbone: nn.Module, directory: str | Path) -> FineTuneModel:
        """Load a model saved by `save_pretrained` onto (a fresh copy of) the backbone it was trained from."""
        directory = Path(directory)
        for name in (CONFIG_FILE, WEIGHTS_FILE):
            if not (directory / name).is_file():
                raise FileNotFoundError(f"{directory} has no {name}: it is not a saved FineTuneModel.")
        fix = (
            f"The saved model in {directory} cannot be trusted: restore the folder from a copy, or train it "
            "again."
        )
        meta = read_json(directory / CONFIG_FILE, fix)
        hidden = backbone.get_input_embeddings().weight.shape[1]
        if hidden != meta["hidden_size"]:
            raise ValueError(
                f"{directory} was trained on a backbone with d={meta['hidden_size']} ({meta['backbone']}); "
                f"this backbone has d={hidden}."
            )
        subclass = families.class_for("finetune", backbone.config) if cls is FineTuneModel else cls
        if subclass.family != meta["family"]:
            raise ValueError(
                f"{directory} holds a {meta['family']} model; this backbone is {subclass.family}."
            )
        model = subclass(backbone, FineTuneConfig.from_dict(meta["finetune"]), backbone_name=meta["backbone"])
        state = load_safetensors(
            directory / WEIGHTS_FILE, fix, sha256=meta.get(HASH_KEY)
        )  # older saves: no hash
        params = model.trainable_state_dict()
        if set(state) != set(params):
            missing, extra = sorted(set(params) - set(state)), sorted(set(state) - set(params))
            raise ValueError(
                f"{directory / WEIGHTS_FILE} does not match the model: missing {missing[:5]}"
                f"{'…' if len(missing) > 5 else ''}, unexpected {extra[:5]}{'…' if len(extra) > 5 else ''}."
            )
        with torch.no_grad():
            for name, value in state.items():
                if params[name].shape != value.shape:
                    raise ValueError(
                        f"{name}: saved shape {tuple(value.shape)} != model {tuple(params[name].shape)}."
                    )
                params[name].copy_(value)
        return model


# -- one subclass per backbone family ------------------------------------------------------------------
@families.register("finetune")
class Seq2SeqFineTuneModel(FineTuneModel):
    """Encoder-decoder backbones (T5, BART), trained with their own LM loss."""

    family = "seq2seq"

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, task_ids=None, **generate_kwargs) -> torch.Tensor:
        """Decoder ids generated for each input."""
        return self.backbone.generate(input_ids=input_ids, attention_mask=attention_mask, **generate_kwargs)

    def sequence_log_likelihood(
        self, input_ids, attention_mask=None, labels=None, task_ids=None
    ) -> torch.Tensor:
        logits = self(input_ids, attention_mask, labels=labels).logits  # (B, T, V)
        return label_log_likelihood(logits, labels)

    @torch.no_grad()
    def score_candidates(self, input_ids, attention_mask=None, task_ids=None, candidates=()) -> torch.Tensor:
        inner, embeds, mask = self._embedded(input_ids, attention_mask)
        return seq2seq_candidate_log_likelihoods(inner, embeds, mask, candidates)


@families.register("finetune")
class CausalFineTuneModel(FineTuneModel):
    """Decoder-only backbones, trained with their shifted next-token loss; positions are counted from the
    attention mask, so LEFT-padded inputs (generation, scoring) get the positions of unpadded ones."""

    family = "causal"

    def forward(
        self, input_ids, attention_mask=None, labels=None, task_ids=None, token_type_ids=None, loss_only=False,
        **kwargs,
    ) -> AttemptOutput:  # fmt: skip
        """logits (B, L, V) aligned with input_ids; the loss is the backbone's shifted next-token loss.
        loss_only: the caller reads only the loss (training): the LM head runs on the label positions alone
        and ``logits`` is None (see `causal_label_loss`)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        kwargs["position_ids"] = positions(attention_mask)  # left padding gives the same positions
        if loss_only and labels is not None and takes_argument(type(self._inner()), "logits_to_keep"):
            loss = causal_label_loss(
                self.backbone, labels, input_ids=input_ids, attention_mask=attention_mask, **kwargs
            )
            return AttemptOutput(loss=loss)
        return super().forward(input_ids, attention_mask, labels, task_ids, token_type_ids, **kwargs)

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, task_ids=None, **generate_kwargs) -> torch.Tensor:
        """Only the new ids of each LEFT-padded input."""
        check_left_padded(attention_mask, "generation")
        generate_kwargs.setdefault("pad_token_id", pad_token_id(self._inner()))
        out = self.backbone.generate(input_ids=input_ids, attention_mask=attention_mask, **generate_kwargs)
        return out[:, input_ids.shape[1] :]

    def sequence_log_likelihood(
        self, input_ids, attention_mask=None, labels=None, task_ids=None
    ) -> torch.Tensor:
        logits = self(input_ids, attention_mask).logits  # (B, L, V)
        return label_log_likelihood(logits[:, :-1], labels[:, 1:])

    @torch.no_grad()
    def score_candidates(self, input_ids, attention_mask=None, task_ids=None, candidates=()) -> torch.Tensor:
        inner, embeds, mask = self._embedded(input_ids, attention_mask)
        return causal_candidate_log_likelihoods(inner, embeds, mask, candidates, pad_token_id(inner) or 0)


@families.register("finetune")
class EncoderFineTuneModel(FineTuneModel):
    """Encoder-only backbones with the pooled per-task heads of `EncoderAttemptModel` (`attempt.modeling.heads`)."""

    family = "encoder"

    def _build_head(self) -> nn.Module:
        labels = self.config.labels_per_task()
        if not labels:
            raise ValueError(
                "Encoder-only backbones need a head: pass num_labels, e.g. num_labels=2 (1 for regression), "
                "or {'rte': 2, 'stsb': 1} for several tasks."
            )
        return ClassificationHeads(self.hidden_size, labels)

    def forward(
        self, input_ids, attention_mask=None, labels=None, task_ids=None, token_type_ids=None, loss_only=False,
        **kwargs,
    ) -> AttemptOutput:  # fmt: skip
        """labels (B,) class ids or scores; task_ids (B,) picks the head. logits (B, C) (loss_only changes
        nothing: there is no LM head to skip)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if task_ids is None:
            task_ids = torch.zeros(input_ids.shape[0], dtype=torch.long, device=input_ids.device)
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        # the bare encoder (skipping a *ForSequenceClassification head); LoRA layers are injected in place
        encoder = getattr(self._inner(), "base_model", self._inner())
        hidden = encoder(input_ids=input_ids, attention_mask=attention_mask, **extra)
        hidden = getattr(hidden, "last_hidden_state", None)
        if hidden is None:
            raise ValueError(
                "The encoder backbone must return last_hidden_state: pass the bare encoder (AutoModel)."
            )
        pooled = pool(hidden, attention_mask, self.config.head_pooling)  # (B, d)
        logits = self.head(pooled.float(), task_ids, self.tasks)  # (B, C)
        loss = per_task_loss(logits, labels, task_ids, self.head, self.tasks) if labels is not None else None
        return AttemptOutput(loss=loss, logits=logits)


__all__ = [
    "DEFAULT_TARGET_MODULES",
    "CausalFineTuneModel",
    "EncoderFineTuneModel",
    "FineTuneConfig",
    "FineTuneModel",
    "Seq2SeqFineTuneModel",
    "default_target_modules",
]
