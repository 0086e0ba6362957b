"""The mixture against a hand computation of the paper's formula, and its options."""

from __future__ import annotations

import math

import pytest
import torch

from attempt.config import AttemptConfig
from attempt.mixture import AttentionalMixture, pool_inputs

B, L, T, M, D = 3, 7, 4, 5, 16


def make(config: AttemptConfig, seed: int = 0) -> tuple[AttentionalMixture, torch.Tensor]:
    torch.manual_seed(seed)
    sources = torch.randn(T, M, D)
    mixture = AttentionalMixture(config, D, sources, torch.randn(M, D))
    with torch.no_grad():  # a LayerNorm away from identity, so the test sees it
        mixture.attention.norm.weight.uniform_(0.5, 1.5)
        mixture.attention.norm.bias.uniform_(-0.1, 0.1)
    return mixture, sources


def hand_computation(mixture, sources, x, mask, task_ids):
    """The formula of DEVELOPERS.md written out with loops, one instance at a time."""
    down = mixture.attention.down.weight  # (r, d)
    up = mixture.attention.up.weight  # (d, r)
    norm = mixture.attention.norm
    prompts = []
    weights = []
    for b in range(x.shape[0]):
        real = x[b][mask[b].bool()]  # (n, d)
        x_hat = real.max(dim=0).values
        z = up @ torch.nn.functional.silu(down @ x_hat)
        h = (z - z.mean()) / torch.sqrt(z.var(unbiased=False) + norm.eps) * norm.weight + norm.bias
        target = mixture.target_prompts[task_ids[b]]
        candidates = [sources[j] for j in range(T)] + [target]
        scores = torch.stack([c.max(dim=0).values @ h / (D * math.e) for c in candidates])
        a = torch.exp(scores) / torch.exp(scores).sum()
        prompts.append(target + sum(a[j] * candidates[j] for j in range(T + 1)))
        weights.append(a)
    return torch.stack(prompts), torch.stack(weights)


def batch(seed: int = 1):
    torch.manual_seed(seed)
    x = torch.randn(B, L, D)
    mask = torch.ones(B, L, dtype=torch.long)
    mask[1, 5:] = 0
    mask[2, 2:] = 0
    return x, mask


def test_mixture_equals_hand_computation_of_the_formula():
    mixture, sources = make(AttemptConfig(prompt_length=M, tasks=("a", "b"), temperature="paper"))
    x, mask = batch()
    task_ids = torch.tensor([0, 1, 1])
    prompt, weights = mixture(x, mask, task_ids)
    expected_prompt, expected_weights = hand_computation(mixture, sources, x, mask, task_ids)
    assert prompt.shape == (B, M, D) and weights.shape == (B, T + 1)
    torch.testing.assert_close(weights, expected_weights, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(prompt, expected_prompt, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B))


def test_paper_temperature_is_d_times_e_and_none_still_means_it():
    for named in ("paper", None):  # None: configs saved before temperature="auto" became the default
        mixture, _ = make(AttemptConfig(prompt_length=M, temperature=named))
        assert mixture.temperature == pytest.approx(D * math.e)
    assert AttemptConfig(temperature=3.0).resolved_temperature(D) == 3.0
    assert AttemptConfig(temperature="sqrt_d").resolved_temperature(D) == pytest.approx(math.sqrt(D))
    with pytest.raises(ValueError, match="temperature"):
        AttemptConfig(temperature="hot")


def test_auto_temperature_gives_the_same_reach_on_any_embedding_scale():
    """T = √d · max_j |p̂_j − mean(p̂_j)| / 5, by hand; scaling the prompts by 100 scales T by 100, so the
    bounds on the logits and the most weight one prompt can get do not change."""
    mixture, sources = make(AttemptConfig(prompt_length=M))
    keys = sources.max(dim=1).values  # (t, d)
    centred = (keys - keys.mean(dim=-1, keepdim=True)).norm(dim=-1)  # (t,)
    assert mixture.temperature == pytest.approx(math.sqrt(D) * float(centred.max()) / 5)
    big = AttentionalMixture(
        AttemptConfig(prompt_length=M), D, sources * 100, mixture.target_prompts[0].detach() * 100
    )
    assert big.temperature == pytest.approx(100 * mixture.temperature, rel=1e-5)
    with torch.no_grad():
        big.attention.norm.weight.copy_(mixture.attention.norm.weight)
        big.attention.norm.bias.copy_(mixture.attention.norm.bias)
    torch.testing.assert_close(big.logit_bounds(), mixture.logit_bounds(), rtol=1e-4, atol=1e-5)
    paper, _ = make(AttemptConfig(prompt_length=M, temperature="paper"))
    assert mixture.max_attention_weight() > 0.99 > 0.5 > paper.max_attention_weight()


def test_max_pooling_ignores_padding_and_max_unmasked_does_not():
    x, mask = batch()
    padded_x = torch.cat([x, torch.full((B, 4, D), 5.0)], dim=1)  # padding with large embeddings
    padded_mask = torch.cat([mask, torch.zeros(B, 4, dtype=torch.long)], dim=1)
    for pooling, same in (("max", True), ("mean", True), ("max_unmasked", False)):
        mixture, _ = make(AttemptConfig(prompt_length=M, pooling=pooling))
        short, w_short = mixture(x, mask)
        long, w_long = mixture(padded_x, padded_mask)
        assert torch.allclose(w_short, w_long, atol=1e-6) is same, pooling
        assert torch.allclose(short, long, atol=1e-6) is same, pooling


def test_pool_inputs_values():
    x = torch.tensor([[[1.0, -2.0], [3.0, -4.0], [9.0, 9.0]]])  # (1, 3, 2)
    mask = torch.tensor([[1, 1, 0]])
    assert pool_inputs(x, mask, "max").tolist() == [[3.0, -2.0]]
    assert pool_inputs(x, mask, "mean").tolist() == [[2.0, -3.0]]
    assert pool_inputs(x, mask, "max_unmasked").tolist() == [[9.0, 9.0]]


def test_uniform_weights_residual_and_target_outside_attention():
    x, mask = batch()
    mixture, sources = make(AttemptConfig(prompt_length=M, uniform_weights=True))
    prompt, weights = mixture(x, mask)
    target = mixture.target_prompts[0]
    assert torch.allclose(weights, torch.full((B, T + 1), 1 / (T + 1)))
    expected = target + (sources.sum(0) + target) / (T + 1)
    torch.testing.assert_close(prompt[0], expected)

    mixture, sources = make(AttemptConfig(prompt_length=M, target_in_attention=False, target_residual=False))
    prompt, weights = mixture(x, mask)
    assert weights.shape == (B, T)
    torch.testing.assert_close(prompt, torch.einsum("bk,kmd->bmd", weights, sources))


def test_layer_norm_frozen_at_identity_when_asked():
    config = AttemptConfig(prompt_length=M, train_layer_norm=False)
    mixture = AttentionalMixture(config, D, torch.randn(T, M, D), torch.randn(M, D))
    norm = mixture.attention.norm
    assert not norm.weight.requires_grad and not norm.bias.requires_grad
    assert torch.equal(norm.weight, torch.ones(D)) and torch.equal(norm.bias, torch.zeros(D))
    x, mask = batch()
    mixture(x, mask)[0].sum().backward()
    assert norm.weight.grad is None and mixture.attention.down.weight.grad is not None


def test_prompt_tuning_returns_the_task_prompt():
    config = AttemptConfig(method="prompt_tuning", prompt_length=M, tasks=("a", "b"))
    mixture = AttentionalMixture(config, D, torch.zeros(0, M, D), torch.randn(M, D))
    assert mixture.attention is None
    x, mask = batch()
    prompt, weights = mixture(x, mask, torch.tensor([1, 0, 1]))
    assert weights is None
    assert torch.equal(prompt[0], mixture.target_prompts[1]) and torch.equal(
        prompt[1], mixture.target_prompts[0]
    )


def test_adding_and_removing_a_source_prompt_keeps_the_attention_module():
    mixture, sources = make(AttemptConfig(prompt_length=M))
    before = {k: v.clone() for k, v in mixture.attention.state_dict().items()}
    x, mask = batch()
    mixture.add_source_prompt("extra", torch.randn(M, D))
    assert mixture(x, mask)[1].shape == (B, T + 2)
    mixture.remove_source_prompt("extra")
    assert mixture(x, mask)[1].shape == (B, T + 1)
    for k, v in mixture.attention.state_dict().items():
        assert torch.equal(v, before[k])
    with pytest.raises(ValueError, match="shape"):
        mixture.add_source_prompt("bad", torch.randn(M, D + 1))
    with pytest.raises(KeyError, match="No source prompt named 'nope'"):
        mixture.remove_source_prompt("nope")


def test_config_validates_itself():
    with pytest.raises(
        ValueError, match="pooling='avg' is not valid. Choose one of: max, max_unmasked, mean"
    ):
        AttemptConfig(pooling="avg")
    with pytest.raises(ValueError, match="Unknown AttemptConfig key"):
        AttemptConfig.from_dict({"poolin": "max"})
    with pytest.raises(ValueError, match="needs target_init_text"):
        AttemptConfig(target_init="text")
    config = AttemptConfig(tasks=["rte", "cb"], num_labels={"rte": 2, "cb": 3})
    assert AttemptConfig.from_dict(config.to_dict()) == config


def test_logit_bounds_match_their_formula_and_hold_against_an_adversary():
    mixture, sources = make(AttemptConfig(prompt_length=M, tasks=("a", "b"), temperature="paper"))
    norm = mixture.attention.norm
    keys = torch.cat([sources.max(dim=1).values, mixture.target_prompts[1].max(dim=0).values[None]])  # (K, d)
    expected = (math.sqrt(D) * (keys * norm.weight).norm(dim=-1) + (keys @ norm.bias).abs()) / (D * math.e)
    torch.testing.assert_close(mixture.logit_bounds(task_id=1), expected.detach())
    bound = mixture.max_attention_weight(task_id=1)
    assert 1 / (T + 1) < bound < 1

    # train the input and the attention projections to give prompt 0 as much weight as they can
    x = torch.randn(4, L, D, requires_grad=True)
    optimizer = torch.optim.Adam([x, mixture.attention.down.weight, mixture.attention.up.weight], lr=0.05)
    for _ in range(60):
        _, weights = mixture(x, None, torch.ones(4, dtype=torch.long))
        optimizer.zero_grad()
        (-weights[:, 0].log().mean()).backward()
        optimizer.step()
    weights = weights.detach()
    reached = float(weights[:, 0].max())
    assert reached > 1.05 / (T + 1)  # the adversary did move the attention
    assert reached <= bound + 1e-6
    scores = weights.log() - weights.log().mean(-1, keepdim=True)  # logits up to a shift
    assert float((scores[:, 0] - scores[:, 1:].min(-1).values).max()) <= float(
        2 * mixture.logit_bounds(1).max()
    )


def test_lower_temperature_and_larger_gain_raise_the_bound():
    paper, _ = make(AttemptConfig(prompt_length=M, temperature="paper"))
    sharp, _ = make(AttemptConfig(prompt_length=M, temperature=math.sqrt(D)))
    torch.testing.assert_close(sharp.logit_bounds() * math.sqrt(D), paper.logit_bounds() * D * math.e)
    assert sharp.max_attention_weight() > paper.max_attention_weight()
    before = paper.max_attention_weight()
    with torch.no_grad():
        paper.attention.norm.weight.mul_(3)
    assert paper.max_attention_weight() > before
    with pytest.raises(ValueError, match="learned attention"):
        make(AttemptConfig(prompt_length=M, uniform_weights=True))[0].logit_bounds()


def test_original_preset_matches_the_original_code():
    config = AttemptConfig.original(prompt_length=M)
    assert (config.pooling, config.train_layer_norm, config.temperature) == ("max_unmasked", False, "paper")
    torch.manual_seed(0)
    mixture = AttentionalMixture(config, 256, torch.randn(T, M, 256), torch.randn(M, 256))
    assert mixture.temperature == pytest.approx(256 * math.e)
    for weight in (mixture.attention.down.weight, mixture.attention.up.weight):
        assert float(weight.std()) == pytest.approx(0.01, rel=0.1) and abs(float(weight.mean())) < 2e-3
    assert not any(p.requires_grad for p in mixture.attention.norm.parameters())
    default = AttentionalMixture(
        AttemptConfig(prompt_length=M), 256, torch.randn(T, M, 256), torch.randn(M, 256)
    )
    assert float(default.attention.down.weight.std()) > 0.03  # nn.Linear's kaiming-uniform: 1/sqrt(3·256)
    assert AttemptConfig.original(temperature=5.0).temperature == 5.0
    with pytest.raises(ValueError, match="attention_init"):
        AttemptConfig(attention_init="xavier")


@pytest.mark.parametrize("shared", [0.0, 10.0])  # kinds at cosine -0.06, and at 0.99 (a large shared part)
def test_the_attention_learns_to_route_two_kinds_of_input_to_their_own_sources(shared):
    """The module can choose per input: two kinds of input, each served best by its own source, end with
    > 0.9 of their weight on that source at T auto, even when the kinds' inputs are at cosine 0.99 (real
    max-pooled inputs are at 0.96: benchmarks/input_pooling.py). At T = d·e the bound keeps it below 0.9."""
    reached = {}
    for temperature in ("auto", "paper"):
        torch.manual_seed(0)
        sources = torch.randn(T, M, D)
        config = AttemptConfig(prompt_length=M, tasks=("a",), temperature=temperature)
        mixture = AttentionalMixture(config, D, sources, torch.randn(M, D))
        directions = torch.randn(D) * shared + torch.randn(2, D)  # (2, D): kind 0's and kind 1's direction
        kinds = torch.arange(32) % 2
        x = directions[kinds][:, None, :] + 0.3 * torch.randn(
            32, L, D
        )  # (32, L, D) noisy tokens of each kind
        wanted = sources[kinds]  # (32, M, D): kind 0 is served best by source 0, kind 1 by source 1
        optimizer = torch.optim.Adam(mixture.attention.parameters(), lr=0.01)  # the target prompt stays put
        for _ in range(300):
            prompt, _ = mixture(x, torch.ones(32, L), None)
            loss = (prompt - mixture.target_prompts[0] - wanted).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        _, weights = mixture(x, torch.ones(32, L), None)
        reached[temperature] = torch.stack([weights[kinds == 0, 0], weights[kinds == 1, 1]]).min()
    cosine = torch.nn.functional.cosine_similarity(directions[0], directions[1], dim=0)
    assert cosine == pytest.approx(-0.06 if shared == 0 else 0.99, abs=0.01)
    assert reached["auto"] > 0.9 > 0.7 > reached["paper"]


def test_centred_inputs_subtract_the_running_mean_of_the_training_inputs():
    """centre_inputs: x̂ − μ with μ the mean x̂ of every training input seen (a weighted running mean over
    batches of any size), frozen in eval mode. Max-pooling commutes with subtracting one vector from every
    token, so the centred mixture equals the plain one on inputs shifted by −μ."""
    centred, _ = make(AttemptConfig(prompt_length=M, tasks=("a",), centre_inputs=True))
    plain, _ = make(AttemptConfig(prompt_length=M, tasks=("a",)))
    plain.load_state_dict({k: v for k, v in centred.state_dict().items() if "input" not in k})
    assert set(centred.attention.state_dict()) - set(plain.attention.state_dict()) == {
        "input_mean",
        "inputs_seen",
    }
    x, mask = batch(1)
    more = torch.randn(2, L, D) + 3.0
    centred.train()
    centred(x, mask)  # 3 rows
    centred(more, torch.ones(2, L))  # 2 rows
    seen = torch.cat([pool_inputs(x, mask, "max"), more.max(dim=1).values])  # (5, d)
    torch.testing.assert_close(centred.attention.input_mean, seen.mean(dim=0))
    assert int(centred.attention.inputs_seen) == 5

    centred.eval()
    mean = centred.attention.input_mean.clone()
    prompt, weights = centred(x, mask)
    expected_prompt, expected_weights = plain(x - mean, mask)
    torch.testing.assert_close(weights, expected_weights)
    torch.testing.assert_close(prompt, expected_prompt)
    assert torch.equal(centred.attention.input_mean, mean)  # evaluation does not move μ
    assert not hasattr(plain.attention, "input_mean")  # off by default: the saved keys stay as they were


def test_centring_separates_inputs_that_share_a_large_part():
    """Inputs at cosine 0.99 get near-identical attention at the start; centred, their weights differ."""
    torch.manual_seed(0)
    sources, target = torch.randn(T, M, D), torch.randn(M, D)
    directions = torch.randn(D) * 10.0 + torch.randn(2, D)  # (2, D): two kinds sharing a large part
    x = directions[torch.arange(32) % 2][:, None, :] + 0.3 * torch.randn(32, L, D)  # (32, L, D)
    spread = {}
    for centre in (False, True):
        torch.manual_seed(1)
        config = AttemptConfig(prompt_length=M, tasks=("a",), centre_inputs=centre)
        mixture = AttentionalMixture(config, D, sources, target)
        mixture(x, None)  # training mode: one batch sets μ
        _, weights = mixture.eval()(x, None)
        spread[centre] = float(weights.std(dim=0).mean())
    assert spread[True] > 5 * spread[False]  # 0.137 vs 0.012 here
