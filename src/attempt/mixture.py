"""The attentional mixture of soft prompts (ATTEMPT, Asai et al., EMNLP 2022). Pure torch.

For an input X with token embeddings x_1..x_L, t frozen source prompts P_1..P_t and the target prompt
P_{t+1} = P_tgt of the input's task (each m × d)::

    x̂   = maxpool_l(x_l)                                   (padding excluded)
          [− μ, the mean x̂ of the training inputs, with AttemptConfig.centre_inputs; not in the paper]
    h   = LayerNorm(W_up · SiLU(W_down · x̂))               W_down: d→r, W_up: r→d, no bias
    p̂_j = maxpool_k(P_j[k])                                 j = 1..t+1
    a_j = exp(p̂_j · h / T) / Σ_k exp(p̂_k · h / T)           T = d·e in the paper (see AttemptConfig.temperature)
    P_X = P_tgt + Σ_j a_j P_j

The module never touches a backbone: it takes input embeddings and a mask and returns the per-instance
prompt, which a wrapper in `attempt.modeling` prepends to the input embeddings.
"""

from __future__ import annotations

import torch
from torch import nn

from attempt.config import AttemptConfig


def pool_inputs(
    input_embeds: torch.Tensor, attention_mask: torch.Tensor | None, pooling: str
) -> torch.Tensor:
    """Pool token embeddings into one vector per instance.

    Args:
        input_embeds: (B, L, d) token embeddings.
        attention_mask: (B, L) with 1 on real tokens, 0 on padding; None means no padding.
        pooling: "max" (over real tokens), "max_unmasked" (over all positions, padding included, as the
            original code does), or "mean" (over real tokens).

    Returns:
        (B, d) pooled vectors.
    """
    if attention_mask is None or pooling == "max_unmasked":
        if pooling == "mean":
            return input_embeds.mean(dim=1)
        return input_embeds.max(dim=1).values
    mask = attention_mask.to(torch.bool).unsqueeze(-1)  # (B, L, 1)
    if pooling == "max":
        lowest = torch.finfo(input_embeds.dtype).min
        return input_embeds.masked_fill(~mask, lowest).max(dim=1).values  # (B, d)
    if pooling == "mean":
        summed = (input_embeds * mask).sum(dim=1)  # (B, d)
        return summed / mask.sum(dim=1).clamp(min=1)
    raise ValueError(f"Unknown pooling {pooling!r}. Choose one of: max, max_unmasked, mean.")


def centred_key_norm(prompts: torch.Tensor) -> float | None:
    """`max_j |p̂_j − mean(p̂_j)|` over (t, m, d) prompts (p̂_j = max-pool of prompt j); None when t = 0.

    A LayerNorm output has zero mean, so only a key's centred part reaches the scores: this is what sets the
    scale of p̂_j · h, and what temperature="auto" divides by.
    """
    if prompts.shape[0] == 0:
        return None
    keys = prompts.float().max(dim=1).values  # (t, d)
    return float((keys - keys.mean(dim=-1, keepdim=True)).norm(dim=-1).max())


class AttentionModule(nn.Module):
    """h = LayerNorm(W_up · SiLU(W_down · x̂)): the only weights of the mixture besides the prompts.

    Its size does not depend on the number of prompts, so source prompts can be added or removed
    after training without changing it.
    """

    def __init__(
        self, hidden_size: int, bottleneck_size: int = 100, train_layer_norm: bool = True, init: str = "default",
        centre_inputs: bool = False,
    ):  # fmt: skip
        super().__init__()
        self.centre_inputs = centre_inputs
        if centre_inputs:  # saved with the weights: evaluation and a reloaded model centre by the same μ
            self.register_buffer("input_mean", torch.zeros(hidden_size))  # (d,) μ
            self.register_buffer("inputs_seen", torch.zeros((), dtype=torch.long))
        self.down = nn.Linear(hidden_size, bottleneck_size, bias=False)
        self.up = nn.Linear(bottleneck_size, hidden_size, bias=False)
        if init == "normal":  # the original code's N(0, 0.01²)
            nn.init.normal_(self.down.weight, std=0.01)
            nn.init.normal_(self.up.weight, std=0.01)
        self.norm = nn.LayerNorm(hidden_size)
        self.norm.requires_grad_(train_layer_norm)

    def forward(self, pooled_input: torch.Tensor) -> torch.Tensor:
        if self.centre_inputs:
            pooled_input = self.centred(pooled_input)  # (B, d)
        return self.norm(self.up(nn.functional.silu(self.down(pooled_input))))  # (B, d)

    def centred(self, pooled_input: torch.Tensor) -> torch.Tensor:
        """x̂ − μ, μ the mean x̂ of every training input seen so far (updated in training mode only).

        Max-pooled inputs of different texts are alike (cosine ~0.96 on SmolLM2: benchmarks/input_pooling.py):
        their shared part dominates W_down · x̂. Subtracting it leaves what tells inputs apart. μ is a running
        mean rather than a learned bias so that it needs no gradient and is the same for every task.
        """
        if self.training:
            with torch.no_grad():
                batch = pooled_input.shape[0]
                seen = self.inputs_seen + batch
                self.input_mean += (pooled_input.float().mean(dim=0) - self.input_mean) * (
                    batch / seen
                )  # (d,)
                self.inputs_seen.copy_(seen)
        return pooled_input - self.input_mean.to(pooled_input.dtype)  # (B, d)


class AttentionalMixture(nn.Module):
    """Per-instance prompts as attention-weighted mixtures of frozen source prompts and a target prompt.

    Holds the frozen source prompts (a buffer, t × m × d), one trainable target prompt per task
    (num_tasks × m × d) and, for method="attempt", the shared attention module. With method="prompt_tuning"
    (or no source prompts) it is plain prompt tuning: the prompt is the task's target prompt.

    Args:
        config: the AttemptConfig.
        hidden_size: d, the backbone's embedding size.
        source_prompts: (t, m, d) frozen source prompts; may be empty (t = 0) for prompt tuning.
        target_init: (m, d) initial value copied into every task's target prompt.
        source_names: names of the source prompts, in order.
    """

    def __init__(
        self,
        config: AttemptConfig,
        hidden_size: int,
        source_prompts: torch.Tensor,
        target_init: torch.Tensor,
        source_names: list[str] | None = None,
    ):
        super().__init__()
        m, d = config.prompt_length, hidden_size
        if source_prompts.dim() != 3 or tuple(source_prompts.shape[1:]) != (m, d):
            raise ValueError(
                f"source_prompts must have shape (t, {m}, {d}) = (t, prompt_length, hidden_size); "
                f"got {tuple(source_prompts.shape)}."
            )
        if tuple(target_init.shape) != (m, d):
            raise ValueError(f"target_init must have shape ({m}, {d}); got {tuple(target_init.shape)}.")
        if config.method == "attempt" and source_prompts.shape[0] == 0:
            raise ValueError(
                "method='attempt' needs at least one source prompt. Load some with "
                "PromptLibrary(path).load([...]) or use method='prompt_tuning'."
            )
        self.config = config
        self.hidden_size = d
        self.source_names = list(source_names or [f"source_{i}" for i in range(source_prompts.shape[0])])
        # not in state_dict: a saved model references its source prompts by name and content hash
        self.register_buffer(
            "source_prompts", source_prompts.detach().clone().float(), persistent=False
        )  # (t, m, d)
        self.target_prompts = nn.Parameter(target_init.detach().float().repeat(len(config.tasks), 1, 1))
        self.temperature = config.resolved_temperature(d, centred_key_norm(self.source_prompts))
        self.attention = (
            AttentionModule(
                d,
                config.bottleneck_size,
                config.train_layer_norm,
                config.attention_init,
                config.centre_inputs,
            )
            if self.uses_attention
            else None
        )

    @property
    def uses_attention(self) -> bool:
        return self.config.method == "attempt"

    @property
    def num_sources(self) -> int:
        return self.source_prompts.shape[0]

    def forward(
        self,
        input_embeds: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        task_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Compute each instance's prompt.

        Args:
            input_embeds: (B, L, d) input token embeddings (the backbone's, without the prompt).
            attention_mask: (B, L) 1 for real tokens, 0 for padding.
            task_ids: (B,) index into config.tasks; None means task 0 for every instance.

        Returns:
            prompt: (B, m, d) the per-instance prompt, in input_embeds' dtype.

            weights: (B, t+1) attention over [source_1..source_t, target] (or (B, t) without the target
            in the attention); None for prompt tuning.
        """
        batch = input_embeds.shape[0]
        if task_ids is None:
            task_ids = torch.zeros(batch, dtype=torch.long, device=input_embeds.device)
        target = self.target_prompts[task_ids]  # (B, m, d)
        if not self.uses_attention:
            return target.to(input_embeds.dtype), None

        # The t+1 candidates are never stacked per instance (a (B, t+1, m, d) copy): scores use the pooled
        # keys and the mixture is one (B, t) x (t, m·d) product plus the target's own term.
        sources = self.source_prompts  # (t, m, d)
        t = sources.shape[0]
        k = t + 1 if self.config.target_in_attention else t
        if self.config.uniform_weights:
            weights = target.new_full((batch, k), 1.0 / k)  # (B, K)
        else:
            pooled_input = pool_inputs(input_embeds.float(), attention_mask, self.config.pooling)  # (B, d)
            h = self.attention(pooled_input)  # (B, d)
            scores = h @ sources.max(dim=1).values.T  # (B, t)
            if self.config.target_in_attention:
                target_keys = self.target_prompts.max(dim=1).values[task_ids]  # (B, d)
                scores = torch.cat([scores, (h * target_keys).sum(-1, keepdim=True)], dim=1)  # (B, t+1)
            weights = (scores / self.temperature).softmax(dim=-1)  # (B, K)
        return self.mix(weights, target).to(input_embeds.dtype), weights

    def mix(self, weights: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The prompt of given attention weights: P = P_tgt + Σ_j a_j P_j, the target among the P_j when it is
        attended (``target_in_attention``), without the first P_tgt when ``target_residual`` is False.

        Args:
            weights: (B, K) attention over [source_1..source_t, target] (K = t+1), or the sources alone (K = t).
            target: (B, m, d) each row's target prompt.

        Returns:
            (B, m, d) the prompts, in float32.
        """
        sources = self.source_prompts  # (t, m, d)
        t, m, d = sources.shape
        mixed = (weights[:, :t] @ sources.reshape(t, m * d)).view(weights.shape[0], m, d)  # (B, m, d)
        if self.config.target_in_attention:
            mixed = mixed + weights[:, t, None, None] * target  # (B, m, d)
        return target + mixed if self.config.target_residual else mixed

    # -- modularity: the attention module does not depend on t -------------------------------------------
    def add_source_prompt(self, name: str, prompt: torch.Tensor) -> None:
        """Append a frozen source prompt; the attention module is reused unchanged (it scores any prompt)."""
        if name in self.source_names:
            raise ValueError(
                f"A source prompt named {name!r} is already in the mixture: {self.source_names}."
            )
        expected = tuple(self.source_prompts.shape[1:])
        if tuple(prompt.shape) != expected:
            raise ValueError(
                f"Source prompt {name!r} has shape {tuple(prompt.shape)}; this mixture needs {expected}."
            )
        new = prompt.detach().to(self.source_prompts).unsqueeze(0)
        self.source_prompts = torch.cat([self.source_prompts, new], dim=0)
        self.source_names.append(name)

    def remove_source_prompt(self, name: str) -> None:
        """Drop a source prompt; the softmax renormalises over the prompts that remain."""
        if name not in self.source_names:
            raise KeyError(
                f"No source prompt named {name!r}. This mixture has: {', '.join(self.source_names)}."
            )
        if self.uses_attention and self.num_sources == 1:
            raise ValueError("Cannot remove the last source prompt of an ATTEMPT mixture.")
        keep = [i for i, n in enumerate(self.source_names) if n != name]
        self.source_prompts = self.source_prompts[keep].clone()
        self.source_names = [self.source_names[i] for i in keep]

    # -- how far the attention can move from uniform ------------------------------------------------------
    @torch.no_grad()
    def logit_bounds(self, task_id: int = 0) -> torch.Tensor:
        """(K,) the largest `|p̂_j · h| / T` any input can reach with the current weights, one per prompt.

        h = γ ⊙ n + β with n the LayerNorm's normalised vector (zero mean, unit variance, so `|n| ≤ √d`); by
        Cauchy-Schwarz `|p̂_j · h| ≤ √d·|γ ⊙ p̂_j| + |β · p̂_j|`, whatever W_down and W_up are. With the paper's
        T = d·e and prompts whose pooled keys are small beside T (embeddings of small norm), these bounds are
        small and no input can pull the softmax far from uniform: only the LayerNorm's gain or a lower
        temperature can (see `max_attention_weight`).
        """
        if not self.uses_attention or self.config.uniform_weights:
            raise ValueError(
                "logit_bounds needs a learned attention (method='attempt', uniform_weights=False)."
            )
        keys = self.source_prompts.max(dim=1).values  # (t, d)
        if self.config.target_in_attention:
            keys = torch.cat([keys, self.target_prompts[task_id].max(dim=0).values[None]])  # (K, d)
        norm = self.attention.norm
        gain = norm.weight.float() if norm.weight is not None else torch.ones_like(keys[0])  # (d,)
        shift = (
            (keys @ norm.bias.float()).abs() if norm.bias is not None else torch.zeros_like(keys[:, 0])
        )  # (K,)
        return (self.hidden_size**0.5 * (keys * gain).norm(dim=-1) + shift) / self.temperature  # (K,)

    def max_attention_weight(self, task_id: int = 0) -> float:
        """The most weight any single prompt can get from any input with the current weights.

        Prompt j is at its best when its logit is +b_j and every other prompt's is −b_k (b = `logit_bounds`):
        exp(b_j) / (exp(b_j) + Σ_{k≠j} exp(−b_k)). Uniform attention over K prompts is 1/K.
        """
        bounds = self.logit_bounds(task_id).double()  # (K,)
        others = torch.exp(-bounds).sum() - torch.exp(-bounds)  # (K,) Σ_{k≠j} exp(−b_k)
        return float((torch.exp(bounds) / (torch.exp(bounds) + others)).max())
