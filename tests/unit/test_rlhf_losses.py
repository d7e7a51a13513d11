"""rlhf.losses against hand computations and slow per-row / per-element loops."""

import json
import math

import pytest
import torch

from rlworks.rlhf.losses import (
    AdaptiveKLController,
    FixedKLController,
    bradley_terry_loss,
    dpo_loss,
    gae,
    grpo_advantages,
    grpo_loss,
    kl_k1,
    kl_k3,
    masked_mean,
    masked_sum,
    masked_whiten,
    ppo_policy_loss,
    ppo_token_rewards,
    ppo_value_loss,
    token_logprobs,
)


def _right_padded_mask(lengths, L):
    return torch.arange(L).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)  # (B, L) bool


# ---------------------------------------------------------------- token_logprobs

def test_token_logprobs_peaked_model_and_alignment():
    V, k, p = 7, 3, 0.6
    # a "model" that puts probability p on token k at every position and (1 − p)/(V − 1) on each other token
    probs = torch.full((V,), (1 - p) / (V - 1))
    probs[k] = p
    input_ids = torch.tensor([[0, 3, 3, 5, 3, 1], [3, 2, 3, 3, 6, 0]])  # (B, T)
    B, T = input_ids.shape
    logits = (probs.log() + 4.2).expand(B, T, V).to(torch.bfloat16)  # any shift: log_softmax removes it
    out = token_logprobs(logits, input_ids)
    assert out.shape == (B, T - 1) and out.dtype == torch.float32
    for b in range(B):
        for t in range(T - 1):
            # position t predicts token t+1
            expected = math.log(p) if input_ids[b, t + 1] == k else math.log((1 - p) / (V - 1))
            assert out[b, t].item() == pytest.approx(expected, abs=2e-2)  # bf16 logits


def test_token_logprobs_position_t_predicts_t_plus_1():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 11, generator=g)
    input_ids = torch.randint(0, 11, (2, 5), generator=g)
    out = token_logprobs(logits, input_ids)
    for b in range(2):
        for t in range(4):
            expected = logits[b, t].softmax(-1)[input_ids[b, t + 1]].log()
            assert out[b, t].item() == pytest.approx(expected.item(), abs=1e-5)


# ---------------------------------------------------------------- masked reductions

def test_masked_mean_sum_ignore_padding():
    x = torch.tensor([[1.0, 2.0, float("nan")], [4.0, float("inf"), 0.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.float32)
    assert masked_sum(x, mask).item() == 7.0
    assert masked_mean(x, mask).item() == pytest.approx(7.0 / 3)
    assert torch.equal(masked_mean(x, mask.bool(), dim=1), torch.tensor([1.5, 4.0]))
    assert torch.equal(masked_sum(x, mask, dim=0), torch.tensor([5.0, 2.0, 0.0]))
    assert masked_mean(x, torch.zeros_like(mask)).item() == 0.0  # empty mask: 0, not NaN


def test_masked_whiten_unit_moments_and_ignores_padding():
    g = torch.Generator().manual_seed(1)
    mask = _right_padded_mask([5, 2, 7, 1], 7)
    x = 3.0 + 2.0 * torch.randn(4, 7, generator=g)
    w = masked_whiten(x, mask)
    vals = w[mask]
    assert vals.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert vals.var(unbiased=True).item() == pytest.approx(1.0, abs=1e-5)
    assert torch.all(w[~mask] == 0)
    # same entries against torch on the masked values directly
    ref = (x[mask] - x[mask].mean()) / x[mask].std()
    assert torch.allclose(vals, ref, atol=1e-5)
    # changing padded values leaves the result unchanged
    x2 = torch.where(mask, x, torch.full_like(x, 1e6))
    assert torch.equal(masked_whiten(x2, mask), w)
    # shift_mean=False keeps the mean
    w_keep = masked_whiten(x, mask, shift_mean=False)
    assert torch.allclose(w_keep[mask], ref + x[mask].mean(), atol=1e-5)


# ---------------------------------------------------------------- KL and PPO rewards

def test_kl_estimators():
    g = torch.Generator().manual_seed(2)
    logp, ref = -torch.rand(100, generator=g) * 5, -torch.rand(100, generator=g) * 5
    assert torch.all(kl_k3(logp, ref) >= 0)
    assert torch.all(kl_k3(logp, logp) == 0) and torch.all(kl_k1(logp, logp) == 0)
    assert torch.equal(kl_k1(logp, ref), logp - ref)
    d = (ref - logp)[0].item()
    assert kl_k3(logp, ref)[0].item() == pytest.approx(math.exp(d) - d - 1, rel=1e-5)


def test_ppo_token_rewards_score_at_last_token_and_zero_kl():
    lengths, L = [3, 5, 1, 4], 5
    mask = _right_padded_mask(lengths, L).float()
    scores = torch.tensor([1.5, -2.0, 0.25, 7.0])
    logp = -torch.rand(4, L, generator=torch.Generator().manual_seed(3))
    rewards, kl = ppo_token_rewards(scores, logp, logp.clone(), mask, beta=0.3)
    expected = torch.zeros(4, L)
    for b, n in enumerate(lengths):
        expected[b, n - 1] = scores[b]
    assert torch.equal(rewards, expected)  # KL penalty exactly 0 when π = π_ref
    assert torch.equal(kl, torch.zeros(4, L))


def test_ppo_token_rewards_kl_penalty():
    lengths, L, beta = [2, 4], 4, 0.1
    mask = _right_padded_mask(lengths, L)
    g = torch.Generator().manual_seed(4)
    logp, ref = -torch.rand(2, L, generator=g), -torch.rand(2, L, generator=g)
    scores = torch.tensor([1.0, 2.0])
    rewards, kl = ppo_token_rewards(scores, logp, ref, mask, beta)
    for b, n in enumerate(lengths):
        for t in range(L):
            k = (logp[b, t] - ref[b, t]).item() if t < n else 0.0
            r = -beta * k + (scores[b].item() if t == n - 1 else 0.0)
            assert kl[b, t].item() == pytest.approx(k, abs=1e-7)
            assert rewards[b, t].item() == pytest.approx(r, abs=1e-6)


# ---------------------------------------------------------------- GAE

def slow_token_gae(rewards, values, lengths, gamma, lam):
    B, L = rewards.shape
    adv, ret = torch.zeros(B, L, dtype=torch.float64), torch.zeros(B, L, dtype=torch.float64)
    for b in range(B):
        n = lengths[b]
        for t in range(n):
            # A_t = Σ_k (γλ)^k δ_{t+k}, δ_i = r_i + γ V_{i+1} − V_i, V after the last token = 0
            total = 0.0
            for i in range(t, n):
                next_v = values[b, i + 1].item() if i + 1 < n else 0.0
                delta = rewards[b, i].item() + gamma * next_v - values[b, i].item()
                total += (gamma * lam) ** (i - t) * delta
            adv[b, t] = total
            ret[b, t] = total + values[b, t].item()
    return adv, ret


@pytest.mark.parametrize("gamma,lam", [(1.0, 0.95), (0.9, 0.7), (0.99, 0.0)])
def test_gae_matches_slow_loop(gamma, lam):
    g = torch.Generator().manual_seed(5)
    lengths, L = [6, 2, 9, 1, 4], 9
    mask = _right_padded_mask(lengths, L)
    rewards = torch.randn(5, L, generator=g, dtype=torch.float64)
    values = torch.randn(5, L, generator=g, dtype=torch.float64)
    # garbage in the padding must not leak in
    rewards = torch.where(mask, rewards, torch.full_like(rewards, 1e9))
    values = torch.where(mask, values, torch.full_like(values, -1e9))
    adv, ret = gae(rewards, values, mask.float(), gamma, lam)
    ref_adv, ref_ret = slow_token_gae(rewards, values, lengths, gamma, lam)
    assert torch.allclose(adv, ref_adv, atol=1e-10)
    assert torch.allclose(ret, ref_ret, atol=1e-10)


def test_gae_lambda_one_gamma_one_is_reward_to_go():
    lengths, L = [3, 5], 5
    mask = _right_padded_mask(lengths, L)
    rewards = torch.tensor([[1.0, 2.0, 3.0, 0.0, 0.0], [0.5, -1.0, 0.0, 2.0, 4.0]])
    values = torch.randn(2, L, generator=torch.Generator().manual_seed(6))
    _, ret = gae(rewards, values, mask, 1.0, 1.0)
    expected = torch.tensor([[6.0, 5.0, 3.0, 0.0, 0.0], [5.5, 5.0, 6.0, 6.0, 4.0]])
    assert torch.allclose(ret, expected, atol=1e-6)


# ---------------------------------------------------------------- PPO losses

def test_ppo_policy_loss_ratio_one_is_minus_mean_advantage():
    g = torch.Generator().manual_seed(7)
    mask = _right_padded_mask([4, 2, 3], 4)
    logp = -torch.rand(3, 4, generator=g)
    adv = torch.randn(3, 4, generator=g)
    loss, stats = ppo_policy_loss(logp, logp.clone(), adv, mask, clip=0.2)
    assert loss.item() == pytest.approx(-adv[mask].mean().item(), abs=1e-6)
    assert stats["clipfrac"].item() == 0.0 and stats["approx_kl"].item() == pytest.approx(0.0, abs=1e-7)


def test_ppo_policy_loss_clips_in_the_right_direction_only():
    eps = 0.2
    # ratios outside / inside [1 − ε, 1 + ε] with both advantage signs
    ratios = torch.tensor([[1.5, 1.5, 0.5, 0.5, 1.1, 0.9]])
    adv = torch.tensor([[1.0, -1.0, 1.0, -1.0, 2.0, -3.0]])
    mask = torch.ones_like(ratios)
    old_logp = torch.zeros_like(ratios)
    logp = ratios.log().requires_grad_(True)
    loss, stats = ppo_policy_loss(logp, old_logp, adv, mask, clip=eps)
    # per element: A > 0 and ρ > 1 + ε → clipped (ε-capped gain, no gradient); A < 0 and ρ > 1 + ε → unclipped;
    # A > 0 and ρ < 1 − ε → unclipped; A < 0 and ρ < 1 − ε → clipped; inside the range → unclipped
    expected = torch.tensor([-1.2, 1.5, -0.5, 0.8, -2.2, 2.7])
    clipped = torch.tensor([True, False, False, True, False, False])
    assert loss.item() == pytest.approx(expected.mean().item(), abs=1e-6)
    assert stats["clipfrac"].item() == pytest.approx(2 / 6)
    loss.backward()
    # d loss / d logp = −A ρ / n where unclipped, 0 where clipped
    expected_grad = torch.where(clipped, torch.zeros(6), -adv[0] * ratios[0] / 6)
    assert torch.allclose(logp.grad[0], expected_grad, atol=1e-6)
    # against a direct per-element computation on random inputs with padding
    g = torch.Generator().manual_seed(8)
    lengths, L = [5, 3], 5
    mask = _right_padded_mask(lengths, L)
    logp, old = -torch.rand(2, L, generator=g), -torch.rand(2, L, generator=g)
    adv = torch.randn(2, L, generator=g)
    loss, stats = ppo_policy_loss(logp, old, adv, mask, clip=eps)
    terms, kls = [], []
    for b, n in enumerate(lengths):
        for t in range(n):
            r = math.exp(logp[b, t].item() - old[b, t].item())
            a = adv[b, t].item()
            terms.append(max(-a * r, -a * min(max(r, 1 - eps), 1 + eps)))
            kls.append((r - 1) - math.log(r))
    assert loss.item() == pytest.approx(sum(terms) / len(terms), abs=1e-6)
    assert stats["approx_kl"].item() == pytest.approx(sum(kls) / len(kls), abs=1e-6)


def test_ppo_value_loss_direct():
    g = torch.Generator().manual_seed(9)
    lengths, L, eps = [4, 1, 3], 4, 0.2
    mask = _right_padded_mask(lengths, L)
    values, old, returns = (torch.randn(3, L, generator=g) for _ in range(3))
    loss = ppo_value_loss(values, old, returns, mask, clip=eps)
    terms = []
    for b, n in enumerate(lengths):
        for t in range(n):
            v, vo, r = values[b, t].item(), old[b, t].item(), returns[b, t].item()
            vc = min(max(v, vo - eps), vo + eps)
            terms.append(max((v - r) ** 2, (vc - r) ** 2))
    assert loss.item() == pytest.approx(0.5 * sum(terms) / len(terms), abs=1e-6)


# ---------------------------------------------------------------- reward model and DPO

def test_bradley_terry_loss_and_gradient_by_hand():
    r_c = torch.tensor([1.0, -0.5, 2.0], requires_grad=True)
    r_r = torch.tensor([0.0, 0.5, 2.0], requires_grad=True)
    loss = bradley_terry_loss(r_c, r_r)
    d = [1.0, -1.0, 0.0]
    sig = [1 / (1 + math.exp(x)) for x in d]  # σ(−d)
    assert loss.item() == pytest.approx(sum(math.log(1 + math.exp(-x)) for x in d) / 3, abs=1e-6)
    loss.backward()
    assert torch.allclose(r_c.grad, -torch.tensor(sig) / 3, atol=1e-6)
    assert torch.allclose(r_r.grad, torch.tensor(sig) / 3, atol=1e-6)


def test_bradley_terry_soft_targets():
    r_c, r_r = torch.tensor([2.0, -1.0]), torch.tensor([0.5, 0.0])
    # t = 0.5 (tie) is symmetric in chosen / rejected
    tie = bradley_terry_loss(r_c, r_r, target=0.5)
    assert tie.item() == pytest.approx(bradley_terry_loss(r_r, r_c, target=0.5).item(), abs=1e-7)
    # t = 1 is the hard label, t = 0 swaps the pair
    assert bradley_terry_loss(r_c, r_r, target=1.0).item() == pytest.approx(bradley_terry_loss(r_c, r_r).item())
    assert bradley_terry_loss(r_c, r_r, target=torch.zeros(2)).item() == pytest.approx(
        bradley_terry_loss(r_r, r_c).item(), abs=1e-7)
    t = torch.tensor([0.8, 0.3])
    d = [1.5, -1.0]
    by_hand = [-(ti * math.log(1 / (1 + math.exp(-x))) + (1 - ti) * math.log(1 / (1 + math.exp(x))))
               for ti, x in zip(t.tolist(), d)]
    assert bradley_terry_loss(r_c, r_r, target=t).item() == pytest.approx(sum(by_hand) / 2, abs=1e-6)


def test_dpo_loss_log2_at_reference_and_gradient_signs():
    g = torch.Generator().manual_seed(10)
    ref_c, ref_r = -10 * torch.rand(4, generator=g), -10 * torch.rand(4, generator=g)
    pi_c, pi_r = ref_c.clone().requires_grad_(True), ref_r.clone().requires_grad_(True)
    loss, rc, rr = dpo_loss(pi_c, pi_r, ref_c, ref_r, beta=0.1)
    assert loss.item() == pytest.approx(math.log(2), abs=1e-6)
    assert torch.all(rc == 0) and torch.all(rr == 0) and not rc.requires_grad
    loss.backward()
    assert torch.all(pi_c.grad < 0) and torch.all(pi_r.grad > 0)  # descent pushes chosen up, rejected down
    # by hand away from the reference
    beta = 0.5
    loss, rc, rr = dpo_loss(torch.tensor([-3.0]), torch.tensor([-4.0]), torch.tensor([-3.5]), torch.tensor([-3.0]),
                            beta)
    z = beta * ((-3.0 + 3.5) - (-4.0 + 3.0))
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-z)), abs=1e-6)
    assert rc.item() == pytest.approx(0.25) and rr.item() == pytest.approx(-0.5)


# ---------------------------------------------------------------- GRPO

def test_grpo_advantages():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0, 0.0, 3.0, 1.0, 5.0])
    adv = grpo_advantages(rewards, group_size=4)
    grouped = adv.view(3, 4)
    assert torch.allclose(grouped.mean(dim=1), torch.zeros(3), atol=1e-6)
    assert torch.equal(grouped[1], torch.zeros(4))  # a constant group: zeros, not NaN
    assert not torch.isnan(adv).any()
    # by hand, group 0: mean 0.5, sample std sqrt(1/3)
    s = math.sqrt(4 * 0.25 / 3)
    assert grouped[0, 0].item() == pytest.approx(0.5 / (s + 1e-4), rel=1e-6)
    assert grouped[0, 1].item() == pytest.approx(-0.5 / (s + 1e-4), rel=1e-6)
    with pytest.raises(ValueError):
        grpo_advantages(rewards, group_size=5)


def test_grpo_loss_against_per_sequence_loop():
    g = torch.Generator().manual_seed(11)
    lengths, L, eps, beta = [5, 2, 4, 1], 5, 0.2, 0.04
    mask = _right_padded_mask(lengths, L)
    logp = -torch.rand(4, L, generator=g)
    old = logp + 0.5 * torch.randn(4, L, generator=g)  # some ratios leave [1 − ε, 1 + ε]
    ref = -torch.rand(4, L, generator=g)
    adv = torch.randn(4, generator=g)
    loss, stats = grpo_loss(logp, old, ref, adv, mask, eps, beta)
    seq_losses, kls, clipped = [], [], []
    for b, n in enumerate(lengths):
        tok = []
        for t in range(n):
            r = math.exp(logp[b, t].item() - old[b, t].item())
            a = adv[b].item()
            d = ref[b, t].item() - logp[b, t].item()
            k3 = math.exp(d) - d - 1
            unclipped, cl = r * a, min(max(r, 1 - eps), 1 + eps) * a
            tok.append(-min(unclipped, cl) + beta * k3)
            kls.append(k3)
            clipped.append(cl < unclipped)
        seq_losses.append(sum(tok) / n)  # mean over the sequence's own tokens, then over sequences
    assert loss.item() == pytest.approx(sum(seq_losses) / len(seq_losses), abs=1e-6)
    assert stats["kl"].item() == pytest.approx(sum(kls) / len(kls), abs=1e-6)
    assert stats["clipfrac"].item() == pytest.approx(sum(clipped) / len(clipped))
    assert 0 < sum(clipped) < len(clipped)  # the case actually exercises clipping
    # at π = π_old = π_ref the loss is −mean A and the KL 0
    loss, stats = grpo_loss(logp, logp, logp, adv, mask, eps, beta)
    assert loss.item() == pytest.approx(-adv.mean().item(), abs=1e-6) and stats["kl"].item() == 0.0


# ---------------------------------------------------------------- KL controllers

def test_adaptive_kl_controller():
    ctl = AdaptiveKLController(init_beta=0.1, target=6.0, horizon=10000)
    ctl.update(current_kl=7.2, n_steps=256)  # KL 20 % over target: e = 0.2
    assert ctl.value == pytest.approx(0.1 * (1 + 0.2 * 256 / 10000))
    before = ctl.value
    ctl.update(current_kl=100.0, n_steps=1000)  # far over: e clipped at +0.2
    assert ctl.value == pytest.approx(before * 1.02)
    before = ctl.value
    ctl.update(current_kl=5.4, n_steps=1000)  # 10 % under: e = −0.1, β falls
    assert ctl.value == pytest.approx(before * (1 - 0.01))
    before = ctl.value
    ctl.update(current_kl=0.0, n_steps=1000)  # far under: e clipped at −0.2
    assert ctl.value == pytest.approx(before * 0.98)
    before = ctl.value
    ctl.update(current_kl=torch.tensor(6.0), n_steps=1000)  # at target: unchanged
    assert ctl.value == pytest.approx(before)
    # state round trip through JSON: the resumed controller continues identically
    state = json.loads(json.dumps(ctl.state_dict()))
    resumed = AdaptiveKLController(init_beta=1.0, target=1.0, horizon=1.0)
    resumed.load_state_dict(state)
    ctl.update(3.0, 512)
    resumed.update(3.0, 512)
    assert resumed.value == ctl.value and resumed.state_dict() == ctl.state_dict()
    with pytest.raises(ValueError):
        AdaptiveKLController(0.1, target=0.0, horizon=10)


def test_fixed_kl_controller():
    ctl = FixedKLController(0.05)
    ctl.update(100.0, 1000)
    assert ctl.value == 0.05
    other = FixedKLController(1.0)
    other.load_state_dict(json.loads(json.dumps(ctl.state_dict())))
    assert other.value == 0.05
