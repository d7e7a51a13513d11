"""Backend "fused" of PPO and A2C: the gradients of each algorithm's loss, derived by hand. (REINFORCE
has none: its one update per long rollout gained 3 % of a run, under the 5 % a fused path must earn.)

Every policy-gradient loss here is a sum over samples of terms in log π(a|s), H(π(·|s)) and V(s).
So a minibatch's gradient needs, per sample, only three scalars — ∂L/∂log π, ∂L/∂H and ∂L/∂V —
which each ``*_weights`` function below derives from its algorithm's loss; ``core.fastgrad`` then
back-propagates them through the distribution and the two MLPs without autograd's bookkeeping,
which for the small MLPs of classic control costs about as much as the arithmetic.

The losses themselves (and so the logged metrics) come from the algorithm files; this module only
adds gradients. ``tests/unit/test_backends_onpolicy.py`` checks every path against the autograd
update over 50 updates, ``tests/unit/test_ppo_update.py`` one gradient at a time in float64.
"""

from __future__ import annotations

import torch

from ...core import fastgrad
from .. import a2c, ppo

# ---------------------------------------------------------------------------------------------
# PPO (ppo.ppo_loss)
# ---------------------------------------------------------------------------------------------


def ppo_weights(cfg, clip: float, new_logprobs, new_values, mb_logprobs, mb_advantages, mb_returns, mb_values):
    """(∂L/∂log π (B,), ∂L/∂H (scalar), ∂L/∂V (B,)) of ``ppo.ppo_loss`` (advantages already normalised)."""
    B = new_logprobs.shape[0]
    ratio = (new_logprobs - mb_logprobs).exp()
    # the unclipped term carries the gradient unless the clip is the active (smaller) one
    inactive = ((mb_advantages > 0) & (ratio > 1.0 + clip)) | ((mb_advantages < 0) & (ratio < 1.0 - clip))
    g_logp = (-mb_advantages * ratio).masked_fill(inactive, 0.0) / B  # ∂(−A·r)/∂log π = −A·r
    if cfg.clip_vloss:  # the larger of the two squared errors carries the gradient
        v_delta = new_values - mb_values
        err, err_c = new_values - mb_returns, mb_values + v_delta.clamp(-clip, clip) - mb_returns
        use_clipped = err_c * err_c > err * err
        g_v = torch.where(use_clipped, err_c * (v_delta.abs() <= clip), err) * (2.0 * cfg.vf_coef / B)
    else:
        g_v = (new_values - mb_returns) * (2.0 * cfg.vf_coef / B)
    return g_logp, -cfg.ent_coef / B, g_v


def ppo_gradients(model, cfg, clip: float, mb_obs, mb_actions, mb_logprobs, mb_advantages, mb_returns, mb_values,
                  *, metrics: bool = True) -> dict[str, torch.Tensor]:
    """Set the parameters' ``.grad`` to ∇ of ``ppo.ppo_loss`` on one minibatch; return its metrics
    (``ppo.ppo_loss``'s, computed only when ``metrics``: an empty dict otherwise)."""
    f = fastgrad.forward(model, mb_obs, mb_actions, entropy=metrics or cfg.ent_coef != 0)
    info = {}
    if metrics:
        _, info = ppo.ppo_loss(cfg, clip, f.logprobs, f.entropy, f.values, mb_logprobs, mb_advantages, mb_returns,
                               mb_values)
    w = ppo_weights(cfg, clip, f.logprobs, f.values, mb_logprobs, mb_advantages, mb_returns, mb_values)
    fastgrad.backward(model, f, *w)
    return info


# ---------------------------------------------------------------------------------------------
# A2C (a2c.a2c_loss)
# ---------------------------------------------------------------------------------------------


def a2c_weights(cfg, ent_coef: float, values, b_advantages, b_returns):
    """(∂L/∂log π, ∂L/∂H, ∂L/∂V) of ``a2c.a2c_loss`` (advantages already normalised if norm_adv)."""
    B = values.shape[0]
    return -b_advantages / B, -ent_coef / B, (values - b_returns) * (2.0 * cfg.vf_coef / B)


def a2c_gradients(model, cfg, ent_coef: float, b_obs, b_actions, b_advantages, b_returns):
    """Set ``.grad`` to ∇ of ``a2c.a2c_loss`` on the batch; return ``(loss, metrics)``."""
    f = fastgrad.forward(model, b_obs, b_actions)
    loss, info = a2c.a2c_loss(cfg, ent_coef, f.logprobs, f.entropy, f.values, b_advantages, b_returns)
    fastgrad.backward(model, f, *a2c_weights(cfg, ent_coef, f.values, b_advantages, b_returns))
    return loss, info
