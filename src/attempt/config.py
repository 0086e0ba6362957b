"""Configuration dataclasses that validate themselves and round-trip through JSON.

`AttemptConfig` describes the prompt side of a model: the attentional mixture of the paper and the plain
prompt-tuning baseline share it. Training options live in `TrainConfig`, below: what
`attempt.training.loop.train` runs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

POOLINGS = ("max", "max_unmasked", "mean")
METHODS = ("attempt", "prompt_tuning")
TARGET_INITS = ("source", "vocab", "text")
HEAD_POOLINGS = ("mean", "cls")
TEMPERATURES = ("auto", "paper", "sqrt_d")
ATTENTION_INITS = ("default", "normal")
# temperature="auto": the largest logit an input can reach when the LayerNorm is at identity. A LayerNorm
# output n has zero mean and norm √d, so n · p̂ ≤ √d |p̂ − mean(p̂)|; with T = √d max_j |p̂_j − mean(p̂_j)| / 5 the
# best-placed prompt can reach logit 5 (e^5 / (e^5 + 6 e^-5) > 0.99 of the weight among 7 prompts), while a
# random input sees logits of order 5 / √d: the attention starts near uniform and can become peaked.
AUTO_TEMPERATURE_REACH = 5.0
# a prompt's name is its file names: <name>.safetensors, and .<name>.safetensors.<8 random>.tmp while it is written,
# which must fit in 255 bytes
MAX_PROMPT_NAME = 200
PROMPT_NAME = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.\-]{{0,{MAX_PROMPT_NAME - 1}}}")  # fullmatch


def check_prompt_name(name: Any) -> str:
    """Return `name` if it can name a prompt in a library (its files are ``<name>.safetensors`` and
    ``<name>.json``), else raise ValueError stating the rule.

    Raises:
        ValueError: not 1-200 letters, digits, '_', '-' or '.' starting with a letter or digit, or ending in
            .json / .safetensors.
    """
    if not isinstance(name, str) or not PROMPT_NAME.fullmatch(name) or name.endswith((".json", ".safetensors")):  # fmt: skip
        long = isinstance(name, str) and len(name) > 40
        shown = f"{name[:40]!r}... ({len(name)} characters)" if long else repr(name)
        raise ValueError(
            f"Invalid prompt name {shown}: use 1-{MAX_PROMPT_NAME} letters, digits, '_', '-' or '.', starting with "
            "a letter or digit and not ending in .json or .safetensors (e.g. 'mnli' or 'mnli.minilm')."
        )
    return name


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not valid. Choose one of: {', '.join(choices)}.")


def config_from_dict(cls: type, data: dict[str, Any], *, what: str | None = None):
    """Build dataclass `cls` from `data`, rejecting unknown keys with the list of valid ones.

    Args:
        cls: a dataclass type.
        data: field values; lists become tuples where the field default is a tuple.
        what: how to name the config in errors (defaults to the class name).

    Returns:
        An instance of `cls` (its `__post_init__` validates the values).

    Raises:
        ValueError: on keys that are not fields of `cls`.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(str(key) for key in set(data) - names)  # a YAML key may be a number
    if unknown:
        raise ValueError(
            f"Unknown {what or cls.__name__} key(s): {', '.join(unknown)}. Valid keys: {', '.join(sorted(names))}."
        )
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            v = data[f.name]
            v = tuple(v) if isinstance(v, list) else v
            values[f.name] = _coerce(f, v, what or cls.__name__)
    return cls(**values)


def _coerce(f: dataclasses.Field, value: Any, what: str) -> Any:
    """Check a value against its field's annotation; numeric strings (YAML reads `1e-2` as a string) become
    numbers. Raises ValueError naming the key when the value cannot be one."""
    kinds = [k.strip() for k in str(f.type).split("|")]
    value = _coerced_number(f, value, what, kinds)
    if isinstance(value, bool) and "bool" not in kinds and "int" in kinds:
        raise ValueError(f"{what} key {f.name!r} must be {f.type}; got {value!r}.")
    # anything else (a null, a list or a date where text belongs: `--set backbone=[a,b]`, `tasks: null`) would
    # surface much later as a TypeError deep inside the library, or when the run's config is saved as JSON
    shape = next((shape for shape, kind in _SHAPES if isinstance(value, shape)), None)
    if shape is None or not any(k.startswith(kind) for k in kinds for s, kind in _SHAPES if s is shape):
        raise ValueError(f"{what} key {f.name!r} must be {f.type}; got {_shown(value)}.")
    if isinstance(value, tuple) and not all(isinstance(v, str) for v in value):
        raise ValueError(f"{what} key {f.name!r} must be a list of names (text); got {_shown(list(value))}.")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{what} key {f.name!r} must be a finite number; got {value!r}.")
    return value


# the Python shapes of the annotations' kinds; a name is text, also for a tuple field (`tasks: rte`)
_SHAPES = ((type(None), "None"), (bool, "bool"), (int, "int"), (int, "float"), (float, "float"), (str, "str"),
           (str, "tuple"), (tuple, "tuple"), (dict, "dict"))  # fmt: skip


def _shown(value: Any) -> str:
    """A value as an error quotes it: what it is in YAML's words, clipped."""
    if value is None:
        return "null"
    plain = list(value) if isinstance(value, tuple) else value
    text = repr(plain) if len(repr(plain)) <= 60 else f"{repr(plain)[:60]}..."
    kind = {tuple: "a list", dict: "a mapping"}.get(type(value))
    return f"{kind} {text}" if kind else f"{text} ({type(value).__name__})"


def _coerced_number(f: dataclasses.Field, value: Any, what: str, kinds: list[str]) -> Any:
    """`value` as the number its field holds when it is a numeric string; else unchanged."""
    if value is None or isinstance(value, (tuple, dict)):
        return value
    for name, kind in (("bool", bool), ("int", int), ("float", float)):
        if name in kinds and not (isinstance(value, kind) or (kind is float and isinstance(value, int))):
            if kind is not bool and isinstance(value, str):
                try:
                    return kind(float(value)) if kind is int and float(value).is_integer() else kind(value)
                except (ValueError, OverflowError):
                    pass
            if "str" in kinds or (kind is int and "float" in kinds and isinstance(value, float)):
                continue
            raise ValueError(f"{what} key {f.name!r} must be {f.type}; got {_shown(value)}.")
    return value


def labels_per_task(num_labels: int | dict[str, int] | None, tasks: tuple[str, ...]) -> dict[str, int]:
    """{task: head outputs} from an int for every task or a {task: n} mapping; {} when None.

    Raises:
        ValueError: a task without an entry, or a count below 1 (1 means regression).
    """
    if num_labels is None:
        return {}
    if isinstance(num_labels, dict):
        missing = sorted(set(tasks) - set(num_labels))
        if missing:
            raise ValueError(f"num_labels has no entry for task(s) {missing}; give one per task in tasks.")
        counts = {t: int(num_labels[t]) for t in tasks}
    else:
        counts = {t: int(num_labels) for t in tasks}
    if any(n < 1 for n in counts.values()):
        raise ValueError(f"num_labels must be >= 1 (1 means regression), got {num_labels}.")
    return counts


@dataclass
class AttemptConfig:
    """How target prompts are built from source prompts (the paper's defaults unless noted).

    Attributes:
        method: "attempt" (attentional mixture over source prompts) or "prompt_tuning" (a plain soft prompt;
            with `target_init="source"` this is SPoT).
        prompt_length: m, the number of prompt vectors.
        tasks: names of the target tasks; one target prompt each, one shared attention module.
        pooling: how the input is pooled into x̂: "max" over non-padding tokens (default; independent of
            padding), "max_unmasked" (the original code: padding included), "mean" over non-padding tokens.
        temperature: softmax temperature T: a number, or "auto" (default): `T = √d · max_j |p̂_j − mean(p̂_j)| / 5`
            over the source keys, fixed when the model is built and saved as a number, so that at the start
            (LayerNorm at identity) the largest logit any input can reach is 5 on every backbone; "paper" (or
            None, as configs saved before "auto" say) = d·e, the paper's, tuned to T5-base's large embeddings,
            on small-embedding backbones it keeps the attention near uniform (see
            `AttentionalMixture.max_attention_weight`); "sqrt_d" = √d, scaled dot-product attention.
        bottleneck_size: width r of the attention projection W_down: d→r, W_up: r→d.
        attention_init: "default" (PyTorch's nn.Linear initialisation) or "normal": W_down and W_up drawn from
            N(0, 0.01²), as the original code does.
        centre_inputs: subtract from x̂ the mean x̂ of the training inputs seen so far (a running mean, saved
            with the weights), so that what the inputs share does not swamp what tells them apart. Not in
            the paper; off by default.
        train_layer_norm: train the LayerNorm's affine parameters (the original code never updates them;
            False keeps them at identity for exact reproduction).
        target_in_attention: the target prompt is one of the t+1 prompts attended over.
        target_residual: P_instance = P_tgt + Σ a_j P_j (False drops the P_tgt term).
        uniform_weights: replace the attention by uniform weights (the paper's averaging ablation).
        target_init: "source" (copy a source prompt), "vocab" (random vocabulary embeddings), or "text"
            (embeddings of `target_init_text`, repeated to m tokens); None means "source" when source
            prompts are given, else "vocab".
        target_init_source: name of the source prompt to copy; None means the first one (the original).
        target_init_text: text whose token embeddings initialise the target prompt when target_init="text".
        num_labels: classes of the head for encoder-only backbones (1 = regression); an int for every
            task, or a {task: n} mapping when the tasks differ.
        head_pooling: how encoder-only backbones pool hidden states for the head: "mean" or "cls".
        seed: seed used to initialise the new parameters.
    """

    method: str = "attempt"
    prompt_length: int = 100
    tasks: tuple[str, ...] = ("default",)
    pooling: str = "max"
    temperature: float | str | None = "auto"
    bottleneck_size: int = 100
    attention_init: str = "default"
    centre_inputs: bool = False
    train_layer_norm: bool = True
    target_in_attention: bool = True
    target_residual: bool = True
    uniform_weights: bool = False
    target_init: str | None = None
    target_init_source: str | None = None
    target_init_text: str | None = None
    num_labels: int | dict[str, int] | None = None
    head_pooling: str = "mean"
    seed: int = 0

    def __post_init__(self) -> None:
        _choice("method", self.method, METHODS)
        _choice("pooling", self.pooling, POOLINGS)
        if self.target_init is not None:
            _choice("target_init", self.target_init, TARGET_INITS)
        _choice("head_pooling", self.head_pooling, HEAD_POOLINGS)
        _choice("attention_init", self.attention_init, ATTENTION_INITS)
        if isinstance(self.tasks, str):
            self.tasks = (self.tasks,)
        self.tasks = tuple(self.tasks)
        if not self.tasks:
            raise ValueError("tasks must name at least one target task, e.g. tasks=('rte',).")
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"tasks has duplicates: {list(self.tasks)}. Name each target task once.")
        if int(self.prompt_length) < 1:
            raise ValueError(f"prompt_length must be >= 1, got {self.prompt_length}.")
        if int(self.bottleneck_size) < 1:
            raise ValueError(f"bottleneck_size must be >= 1, got {self.bottleneck_size}.")
        if isinstance(self.temperature, str):
            _choice("temperature", self.temperature, TEMPERATURES)
        elif self.temperature is not None and not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ValueError(
                f"temperature must be a positive number or one of {', '.join(TEMPERATURES)}; got {self.temperature}."
            )
        if self.target_init == "text" and not self.target_init_text:
            raise ValueError("target_init='text' needs target_init_text, e.g. target_init_text='Classify:'.")
        labels_per_task(self.num_labels, self.tasks)  # validates

    @classmethod
    def original(cls, **fields: Any) -> AttemptConfig:
        """The original code's choices (github.com/AkariAsai/ATTEMPT), for exact reproduction: max-pooling over
        padding too, the LayerNorm never trained, T = d·e, W_down/W_up from N(0, 0.01²). `fields` override.

        The training side of the original is set on TrainConfig: no weight decay on the attention
        (weight_decay=0) and padding to max_source_length (pad_to=max_source_length, without which
        "max_unmasked" pools over a batch-dependent amount of padding)."""
        preset = {
            "pooling": "max_unmasked",
            "train_layer_norm": False,
            "temperature": "paper",
            "attention_init": "normal",
        }
        return cls(**{**preset, **fields})

    def labels_per_task(self) -> dict[str, int]:
        """{task: number of head outputs} for encoder-only backbones (empty when num_labels is None)."""
        return labels_per_task(self.num_labels, self.tasks)

    def resolved_temperature(self, hidden_size: int, source_keys_norm: float | None = None) -> float:
        """The softmax temperature as a number.

        Args:
            hidden_size: d.
            source_keys_norm: for "auto", the largest norm of a centred source key, `max_j |p̂_j − mean(p̂_j)|`;
                None (no source prompts: nothing to attend over) gives d·e.
        """
        if self.temperature is None or self.temperature == "paper":
            return hidden_size * math.e
        if self.temperature == "sqrt_d":
            return math.sqrt(hidden_size)
        if self.temperature == "auto":
            if not source_keys_norm:
                return hidden_size * math.e
            return math.sqrt(hidden_size) * source_keys_norm / AUTO_TEMPERATURE_REACH
        return float(self.temperature)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["tasks"] = list(self.tasks)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttemptConfig:
        return config_from_dict(cls, data)

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text


MODES = ("source", "attempt", "prompt_tuning", "spot", "finetune", "lora")
PROMPT_MODES = ("source", "attempt", "prompt_tuning", "spot")  # the modes that train a soft prompt
# What a run leaves unset (None) is picked from its backbone's family when it starts
# (`TrainConfig.with_backbone_defaults`), and the saved train_config.json records the numbers. seq2seq: the paper's
# T5-base values. causal: those the shipped SmolLM2-135M prompts were trained with (benchmarks/source_prompts.py;
# lr 0.01 was the best of 0.003 / 0.01 / 0.03 on sst2), since 0.3 diverged there (loss 3.3 -> 11.5 at step 2).
# encoder: the MiniLM recipes of configs/cpu.
BACKBONE_DEFAULTS = {
    "seq2seq": {"learning_rate": 0.3, "batch_size": 32, "prompt_length": 100},
    "causal": {"learning_rate": 0.01, "batch_size": 8, "prompt_length": 20},
    "encoder": {"learning_rate": 0.03, "batch_size": 16, "prompt_length": 20},
}
# TrainConfig.gradient_checkpointing left unset (None) is on for the prompt modes over these families, and always
# with shard_backbone (a backbone too big for one device). Issue 26's rule: the default reaches <= 0.5x full
# fine-tuning's peak memory wherever that costs < 1.3x step time. SmolLM2-135M, ATTEMPT m = 100, batch 8 x 64
# (benchmarks/results/efficiency, 2026-12-02): 0.84x -> 0.45x full fine-tuning's peak, for 1.17-1.27x the step
# time (fastest repeat; CPU time of 6 interleaved repeats); at m = 20, the prompt length picked for causal
# backbones, 1.04-1.09x (64 and 192 tokens). Encoders stay off: MiniLM reached 0.72x at 1.20-1.31x, never 0.5x.
# Fine-tuning and LoRA stay off: their gradients need no input activations.
CHECKPOINTED_FAMILIES = ("causal", "seq2seq")
# finetune and lora train the backbone itself, which a prompt's learning rate would wreck (the first values of
# benchmarks/reproduce.py's learning-rate grid)
MODE_LEARNING_RATES = {"finetune": 1e-4, "lora": 1e-3}
SHORT_RUN = 200  # log_every=None: a run of at most this many steps logs its training loss at every step
EVAL_METHODS = ("rank", "generate")
MIXED_PRECISIONS = ("no", "bf16", "fp16")
BACKBONE_DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class TrainConfig:
    """A training run: what to train, on what, and how. Becomes the CLI's options and YAML recipes.

    Attributes:
        mode: "source" (prompt tuning on a source task; the prompt is added to the library), "attempt"
            (single- or multi-task: one target prompt per task, one shared attention), and the baselines
            "prompt_tuning", "spot" (prompt tuning initialised from a source prompt), "finetune" (all
            backbone weights), "lora" (PEFT LoRA).
        backbone: Hub id, alias or local folder (see `attempt.backbones.resolve`).
        tasks: target task names (several = multi-task with mixed batches).
        source_prompts: names in `library` used by ATTEMPT (and the one SPoT copies); empty = all.
        library: the prompt library folder.
        output_dir: where checkpoints, metrics and the resolved config go.
        data_dir: a local mirror of the Hub datasets (else ATTEMPT_DATA_DIR, else the Hub).
        attempt: AttemptConfig fields (prompt_length, pooling, temperature, ...).
        max_steps: optimizer steps.
        batch_size: examples per optimizer step per process (before gradient accumulation); None = picked from
            the backbone's family when the run starts (`BACKBONE_DEFAULTS`: seq2seq 32, causal 8, encoder 16).
        eval_batch_size: examples per evaluation batch.
        learning_rate: the target prompt's learning rate (and everything's for finetune/lora); None = picked
            when the run starts: seq2seq 0.3 (the paper's T5-base value), causal 0.01, encoder 0.03; finetune
            1e-4 and lora 1e-3 on any backbone. The prompt length (``attempt.prompt_length``) left unset is picked
            then too: the source prompts' length for attempt/spot, else seq2seq 100, causal 20, encoder 20. The
            run's train_config.json records the values picked (configs/paper/ sets the paper's T5-base ones).
        attention_learning_rate: the attention module's (None = learning_rate).
        head_learning_rate: an encoder head's (None = attention_learning_rate).
        weight_decay, warmup_steps, max_grad_norm, gradient_accumulation_steps: the optimiser's settings
            (AdamW, linear warm-up then linear decay to 0).
        mixed_precision: "no", "bf16" or "fp16" (where the device supports it).
        eval_in_float32: score the validation and test rows in float32 even when training in mixed precision
            (faster training, exact scores): bf16 autocast moves each label's score by up to ~0.3 nats and
            changed 1-6% of a trained SmolLM2 prompt's answers, all near ties (benchmarks/precision.py).
            Needs float32 weights (no backbone_dtype).
        gradient_checkpointing: recompute the backbone's activations in backward (activation checkpointing): the
            same gradients for less memory, since a prompt's gradient otherwise keeps every layer's activations.
            None = picked when the run starts: on with shard_backbone, and for the prompt modes over a causal
            or seq2seq backbone (SmolLM2, m = 100: peak memory 0.84x -> 0.45x full fine-tuning's, step time
            1.17-1.27x; `CHECKPOINTED_FAMILIES`), off otherwise (an encoder never reached 0.5x; finetune/lora). True/False
            always win; the run's train_config.json records the value used.
        shard_backbone: shard the frozen backbone across the run's processes (torch FSDP2, one transformer block
            at a time; `attempt.training.sharding`) for a backbone one device cannot hold; the prompts, attention
            and heads stay whole on every process. Launch several processes (torchrun / accelerate launch); with
            one it does nothing but warn. Not for mode="finetune"/"lora", which train the backbone.
        backbone_dtype: hold the frozen backbone in "bfloat16" or "float16" (half its weight and activation
            memory; the prompts, attention and heads stay float32); None or "float32" = as loaded. Not for
            mode="finetune", whose AdamW needs float32 weights (use mixed_precision there).
        seed: seeds data order and every new weight's initialisation (attention, target prompt, heads, LoRA).
        max_source_length, max_target_length: token limits (the prompt comes on top).
        pad_to: pad every batch to this many tokens (the original protocol: 256); None = dynamic padding.
        group_by_length: batch examples of similar length together (default) to cut padding.
        eval_every: evaluate (and checkpoint) every N steps; 0 = only at the end.
        log_every: log the training loss (and learning rates) every N steps, besides the first and the last;
            None = every step for a run of up to 200 steps, else every 10.
        early_stopping_patience: stop after N evaluations without improvement; None = never.
        eval_method: "rank" (score each label's verbalizer) or "generate" for seq2seq/causal backbones.
        k_shot: train on k examples per class (few-shot); None = the full training split.
        k_shot_allow_fewer: a class with fewer than k_shot training rows contributes all of them (else the run
            is refused before it starts).
        train_limit, eval_limit: cap the number of training / validation / test examples per task (CPU runs).
        test_limit: cap the test examples per task on its own (None = eval_limit): frequent validation on a few
            rows, one final test on many.
        split_seed: seed of the split protocol (the held-out validation rows, the halves of a small task's
            official validation set); None = seed. Fix it to keep the same test rows across seeds.
        mixing_cap: examples-proportional mixing cap per task (multi-task); None = no cap.
        mixing_temperature: temperature of the mixing rates (1 = proportional).
        lora_rank, lora_alpha: LoRA settings for mode="lora".
        prompt_name: mode="source": the library name of the trained prompt (default: the task name).
        report_to: experiment trackers that get the metrics of metrics.jsonl too, through Accelerate's
            log_with: tensorboard (into output_dir/trackers/), wandb, mlflow, comet_ml, aim, ... or all.
        task_definitions: your own tasks, {name: definition} as `attempt.tasks.user` reads them from task files
            (`attempt train --task-file task.yaml`); recorded with the run, so evaluating and predicting with it
            need no task file. Checked here, registered by `register_tasks`. None = built-in tasks only.
        data_files: a built-in task's splits from your own files, {task: {train/validation/test: path,
            columns: {your_column: task_field}}} (`attempt.tasks.data_files`); a split without a file follows the
            paper's protocol. None = the mirror's or the Hub's data only.
    """

    mode: str = "attempt"
    backbone: str = "sentence-transformers/all-MiniLM-L6-v2"
    tasks: tuple[str, ...] = ("rte",)
    source_prompts: tuple[str, ...] = ()
    library: str = "prompts"
    output_dir: str = "runs/attempt"
    data_dir: str | None = None
    attempt: dict[str, Any] = field(default_factory=dict)
    max_steps: int = 1000
    batch_size: int | None = None  # None: from the backbone when the run starts
    eval_batch_size: int = 64
    learning_rate: float | None = None  # None: from the backbone (and the mode) when the run starts
    attention_learning_rate: float | None = None
    head_learning_rate: float | None = None
    weight_decay: float = 1e-5
    warmup_steps: int = 0
    max_grad_norm: float = 1.0
    gradient_accumulation_steps: int = 1
    mixed_precision: str = "no"
    eval_in_float32: bool = False
    gradient_checkpointing: bool | None = None  # None: picked when the run starts (CHECKPOINTED_FAMILIES)
    shard_backbone: bool = False  # resume-free: the same run, sharded or not
    backbone_dtype: str | None = None
    seed: int = 42
    max_source_length: int = 256
    max_target_length: int = 16
    pad_to: int | None = None
    group_by_length: bool = True
    eval_every: int = 100
    log_every: int | None = None  # resume-free: it only logs
    early_stopping_patience: int | None = None
    eval_method: str = "rank"
    k_shot: int | None = None
    k_shot_allow_fewer: bool = False
    train_limit: int | None = None
    eval_limit: int | None = None
    test_limit: int | None = None
    split_seed: int | None = None
    mixing_cap: int | None = None
    mixing_temperature: float = 1.0
    lora_rank: int = 8
    lora_alpha: int = 16
    prompt_name: str | None = None
    report_to: tuple[
        str, ...
    ] = ()  # resume-free (attempt.runs.state.RESUME_FREE_FIELDS): it logs, never trains
    task_definitions: dict[str, Any] | None = None  # None, not {}: runs saved before it resume unchanged
    data_files: dict[str, Any] | None = None  # None, not {}: runs saved before it resume unchanged

    def __post_init__(self) -> None:
        _choice("mode", self.mode, MODES)
        _choice("eval_method", self.eval_method, EVAL_METHODS)
        _choice("mixed_precision", self.mixed_precision, MIXED_PRECISIONS)
        if self.shard_backbone and self.mode in ("finetune", "lora"):
            raise ValueError(
                f"shard_backbone shards a frozen backbone; mode={self.mode!r} trains it. Use mode='attempt' (or a "
                "prompt mode), or run without shard_backbone."
            )
        if self.prompt_name is not None:  # "" would silently become the task's name
            check_prompt_name(self.prompt_name)
        if self.backbone_dtype is not None:
            _choice("backbone_dtype", self.backbone_dtype, BACKBONE_DTYPES)
            if self.eval_in_float32 and self.backbone_dtype != "float32":
                raise ValueError(
                    f"eval_in_float32 scores in float32, but backbone_dtype={self.backbone_dtype!r} holds the backbone "
                    "in half precision; drop backbone_dtype (and train with mixed_precision='bf16') or eval_in_float32."
                )
            if self.mode == "finetune" and self.backbone_dtype != "float32":
                raise ValueError(
                    f"backbone_dtype={self.backbone_dtype!r} with mode='finetune' would train half-precision weights "
                    "with AdamW; keep the backbone in float32 and set mixed_precision='bf16' instead."
                )
        if isinstance(self.tasks, str):
            self.tasks = (self.tasks,)
        self.tasks = tuple(self.tasks)
        self.source_prompts = (
            (self.source_prompts,) if isinstance(self.source_prompts, str) else tuple(self.source_prompts)
        )
        self.report_to = (self.report_to,) if isinstance(self.report_to, str) else tuple(self.report_to)
        if not self.tasks:
            raise ValueError("tasks must name at least one task, e.g. tasks: [rte].")
        if self.mode == "source" and len(self.tasks) != 1:
            raise ValueError(f"mode='source' trains one source prompt per run; got tasks={list(self.tasks)}.")
        for name in (
            "max_steps",
            "batch_size",
            "eval_batch_size",
            "gradient_accumulation_steps",
            "max_source_length",
            "log_every",
        ):
            if getattr(self, name) is not None and int(getattr(self, name)) < 1:  # None: picked at the start
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        for name in ("learning_rate", "weight_decay", "max_grad_norm"):
            if getattr(self, name) is not None and float(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}.")
        if self.eval_every < 0 or self.warmup_steps < 0:
            raise ValueError("eval_every and warmup_steps must be >= 0.")
        for name in ("train_limit", "eval_limit", "test_limit"):
            if getattr(self, name) is not None and int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1 or None (no cap), got {getattr(self, name)}.")
        if self.k_shot is not None and self.k_shot < 1:
            raise ValueError(f"k_shot must be >= 1 or None, got {self.k_shot}.")
        self.attempt_config()  # validate the nested AttemptConfig fields now, not mid-run
        if self.task_definitions is not None:  # checked now; registered by `register_tasks`, not here
            from attempt.tasks.user import normalize_definitions

            self.task_definitions = normalize_definitions(self.task_definitions)
        if self.data_files is not None:
            from attempt.tasks.data_files import normalize_data_files

            self.data_files = normalize_data_files(self.data_files, self.tasks)

    def register_tasks(self) -> None:
        """Register the run's own tasks (`task_definitions`) in the task registry, so `attempt.tasks.get_task`
        finds them; the same definitions again are a no-op.

        Building a TrainConfig only checks them: what trains or loads a run registers them (`attempt.training.
        loop.train`, `attempt.runs.build.load_run`), so reading a config changes no global state.

        Raises:
            attempt.tasks.user.TaskFileError: a different task of the same name is already registered.
        """
        if self.task_definitions:
            from attempt.tasks.user import register_definitions

            register_definitions(self.task_definitions)

    def with_backbone_defaults(self, family: str, source_length: int | None = None) -> TrainConfig:
        """This config with what it leaves unset picked for its backbone (see `BACKBONE_DEFAULTS`): learning_rate,
        batch_size, ``attempt.prompt_length`` (prompt modes only), log_every and gradient_checkpointing
        (`CHECKPOINTED_FAMILIES`); set values are kept.

        Args:
            family: the backbone's family, "seq2seq", "causal" or "encoder" (`attempt.backbones.resolve.family_of`).
            source_length: the length of the run's source prompts (attempt/spot), which the target must match.
        """
        picked = BACKBONE_DEFAULTS[family]
        changes: dict[str, Any] = {}
        if self.learning_rate is None:
            changes["learning_rate"] = MODE_LEARNING_RATES.get(self.mode, picked["learning_rate"])
        if self.batch_size is None:
            changes["batch_size"] = picked["batch_size"]
        if self.mode in PROMPT_MODES and "prompt_length" not in self.attempt:
            changes["attempt"] = {**self.attempt, "prompt_length": source_length or picked["prompt_length"]}
        if self.log_every is None:
            changes["log_every"] = 1 if self.max_steps <= SHORT_RUN else 10
        if self.gradient_checkpointing is None:
            prompt = self.mode in PROMPT_MODES and family in CHECKPOINTED_FAMILIES
            changes["gradient_checkpointing"] = self.shard_backbone or prompt
        return dataclasses.replace(self, **changes) if changes else self

    def attempt_config(self) -> AttemptConfig:
        """The AttemptConfig this run builds its model with (tasks and method filled in from the mode)."""
        method = "attempt" if self.mode == "attempt" else "prompt_tuning"
        # the run's seed initialises the new weights too (attention, vocab-initialised target, heads), unless
        # the recipe's `attempt:` mapping sets its own
        fields = {"method": method, "tasks": self.tasks, "seed": self.seed, **self.attempt}
        if self.mode == "spot":
            fields.setdefault("target_init", "source")
        return config_from_dict(AttemptConfig, fields, what="attempt")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["tasks"] = list(self.tasks)
        data["source_prompts"] = list(self.source_prompts)
        data["report_to"] = list(self.report_to)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return config_from_dict(cls, data)

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
        """Read a YAML recipe, apply `overrides` (e.g. from the command line), validate.

        Raises:
            ValueError: not YAML (or nested more than 100 deep), unknown keys (listing the valid ones), invalid
                values.
        """
        import yaml

        from attempt.utils.reading import NESTED_TOO_DEEP, nesting_problem
        from attempt.utils.textfiles import decoded

        try:
            data = yaml.safe_load(decoded(path)) or {}
            # YAML aliases (&a / *a) can expand a small file to billions of values
            problem = nesting_problem(data, max_values=100_000)
        except yaml.YAMLError as error:
            problem = " ".join(str(error).split())
        except RecursionError:  # the parser's own stack overflowed
            problem = NESTED_TOO_DEEP
        if problem:
            raise ValueError(f"{path} is not a valid recipe ({problem}); fix the YAML.")
        if not isinstance(data, dict):
            raise ValueError(f"{path} must hold a mapping of TrainConfig keys, e.g. 'mode: attempt'.")
        return cls.from_dict({**data, **(overrides or {})})
