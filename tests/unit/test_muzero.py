"""MuZero's pieces: gradient scaling, latent scaling, value targets, the unrolled loss, and a short run
through the API (act, save/load, the raw policy head)."""

import numpy as np
import pytest
import torch

from rlworks.algos import muzero as mz
from rlworks.algos.agent import load_agent
from rlworks.config import ConfigError
from rlworks.core.support import scalar_to_support

TINY = dict(n_envs=2, num_simulations=4, batch_size=8, learning_starts=40, latent_dim=8, hidden=(16,),
            num_unroll=3, td_steps=3, replay_size=2000, updates_per_step=0.25)


def test_scale_gradient_scales_only_the_gradient():
    x = torch.tensor([1.0, -2.0], requires_grad=True)
    y = mz.scale_gradient(x, 0.5)
    assert torch.equal(y, x)
    (y * torch.tensor([3.0, 5.0])).sum().backward()
    assert torch.equal(x.grad, torch.tensor([1.5, 2.5]))


def test_hidden_states_are_scaled_to_the_unit_interval():
    s = mz.scale_latent(torch.randn(5, 7) * 30)
    assert torch.allclose(s.amin(-1), torch.zeros(5)) and torch.allclose(s.amax(-1), torch.ones(5))


def _batch(B=6, K=3, obs_dim=4, A=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"obs": torch.randn(B, obs_dim, generator=g), "actions": torch.randint(0, A, (B, K), generator=g),
            "target_rewards": torch.rand(B, K + 1, generator=g), "value_prefix": torch.rand(B, K + 1, generator=g),
            "bootstrap_scale": torch.rand(B, K + 1, generator=g), "bootstrap_obs": torch.randn(B, K + 1, obs_dim,
                                                                                           generator=g),
            "bootstrap_stored": torch.rand(B, K + 1, generator=g) * 10,
            "target_policies": torch.softmax(torch.randn(B, K + 1, A, generator=g), -1),
            "masks": torch.ones(B, K + 1), "weights": torch.ones(B), "unroll_obs": torch.randn(B, K + 1, obs_dim,
                                                                                              generator=g),
            "unroll_seen": torch.ones(B, K + 1)}


def test_value_targets_use_stored_values_or_the_target_network():
    torch.manual_seed(0)
    net = mz.MuZeroNet(4, 2, 8, (16,), 10)
    torch.nn.init.normal_(net.value_head[-1].weight)  # a value head that is not zero
    b = _batch()
    stored = mz.value_targets(net, b, 0.0)
    assert torch.allclose(stored, b["value_prefix"] + b["bootstrap_scale"] * b["bootstrap_stored"])
    fresh = mz.value_targets(net, b, 1.0)
    with torch.no_grad():
        v = mz.support_to_scalar(net.initial_inference(b["bootstrap_obs"].reshape(-1, 4))[2], 10).reshape(6, 4)
    assert torch.allclose(fresh, b["value_prefix"] + b["bootstrap_scale"] * v)
    assert not torch.allclose(fresh, stored)
    half = mz.value_targets(net, b, 0.5)  # the first half of the batch reanalysed, the rest as stored
    assert torch.allclose(half[:3], fresh[:3]) and torch.allclose(half[3:], stored[3:])


def _state(cfg, legal_env=None):
    """Online and target networks for a 4-float, 2-action MDP, or (``legal_env``) TicTacToe's 27 floats and 9 moves."""
    torch.manual_seed(2)
    obs_dim, A, discount = (27, 9, -1.0) if legal_env else (4, 2, 0.99)
    net, target = (mz.MuZeroNet(obs_dim, A, 8, (16,), cfg.support_size) for _ in range(2))
    return mz.MuZeroState(mz.MuZeroPlanner(net, cfg, discount, legal_env), target, None)


@pytest.mark.parametrize("search", ["puct", "gumbel"])
def test_policy_reanalysis_searches_again_with_the_target_network(search):
    cfg = mz.MuZeroConfig(num_simulations=6, support_size=10, reanalyse_policy_fraction=0.5, search=search)
    st = _state(cfg)
    b = _batch()
    b["masks"][1, 2:] = 0  # row 1 ends after two positions: its last targets stay the stored (masked) ones
    z = torch.rand(6, 4)
    z_out, pi = mz.reanalysed_targets(st, cfg, b, z)
    assert z_out is z  # reanalyse_value_mix 0: the value targets stay
    with torch.no_grad():
        fresh = mz.search(st.target, b["unroll_obs"][:3].reshape(12, 4), cfg, discount=0.99, rng=None).policy
    fresh = fresh.reshape(3, 4, 2)
    inside = b["masks"][:3, :, None] > 0
    torch.testing.assert_close(pi[:3], torch.where(inside, fresh, b["target_policies"][:3]))
    torch.testing.assert_close(pi[3:], b["target_policies"][3:])  # the rest of the batch as stored
    assert not torch.allclose(pi[0], b["target_policies"][0])
    off = mz.MuZeroConfig(num_simulations=6, support_size=10)
    assert mz.reanalysed_targets(st, off, b, z)[1] is b["target_policies"]


@pytest.mark.parametrize("lam", [0.5, 1.0])
def test_reanalysis_value_mix_moves_the_value_targets_to_the_new_searchs_root_value(lam):
    cfg = mz.MuZeroConfig(num_simulations=6, support_size=10, reanalyse_policy_fraction=0.5, reanalyse_value_mix=lam)
    st = _state(cfg)
    torch.nn.init.normal_(st.target.value_head[-1].weight)  # a value head that is not zero
    b = _batch()
    b["masks"][1, 2:] = 0  # beyond row 1's game end its value targets stay
    z = torch.rand(6, 4) * 2 - 1
    mixed, pi = mz.reanalysed_targets(st, cfg, b, z.clone())
    with torch.no_grad():
        fresh = mz.search(st.target, b["unroll_obs"][:3].reshape(12, 4), cfg, discount=0.99, rng=None)
    v = fresh.root_value.reshape(3, 4)
    inside = b["masks"][:3] > 0
    torch.testing.assert_close(mixed[:3], torch.where(inside, (1 - lam) * z[:3] + lam * v, z[:3]))
    torch.testing.assert_close(mixed[3:], z[3:])  # the positions not reanalysed keep their targets
    assert not torch.allclose(mixed[0], z[0])
    torch.testing.assert_close(pi[:3][inside], fresh.policy.reshape(3, 4, 2)[inside])


def test_reanalysis_root_noise_is_the_acting_searchs_noise_drawn_from_the_given_rng():
    cfg = mz.MuZeroConfig(num_simulations=9, support_size=10, reanalyse_policy_fraction=1.0, reanalyse_noise=True,
                          dirichlet_alpha=0.1, exploration_fraction=0.9)
    st, b = _state(cfg), _batch()
    b["masks"][:] = 1
    z = torch.zeros(6, 4)
    pi = mz.reanalysed_targets(st, cfg, b, z, np.random.default_rng(5))[1]
    with torch.no_grad():
        noisy = mz.search(st.target, b["unroll_obs"].reshape(24, 4), cfg, discount=0.99, rng=np.random.default_rng(5))
        clean = mz.search(st.target, b["unroll_obs"].reshape(24, 4), cfg, discount=0.99, rng=None)
    torch.testing.assert_close(pi, noisy.policy.reshape(6, 4, 2))
    assert not torch.allclose(noisy.policy, clean.policy)  # the noise moves some visits
    torch.testing.assert_close(mz.reanalysed_targets(st, cfg, b, z)[1], clean.policy.reshape(6, 4, 2))


def test_policy_reanalysis_keeps_to_the_legal_moves():
    from rlworks.envs.tictactoe import observe

    cfg = mz.MuZeroConfig(num_simulations=8, support_size=10, num_unroll=1, reanalyse_policy_fraction=1.0)
    st = _state(cfg, "rlworks/TicTacToe-v0")
    boards = [[1, -1, 0, 0, 1, 0, 0, 0, -1], [1, 1, -1, -1, -1, 1, 1, 0, 0]]
    obs = torch.tensor(np.stack([observe(bd, 1 if i == 0 else -1) for i, bd in enumerate(boards)]))
    legal = torch.tensor([[c == 0 for c in bd] for bd in boards])
    b = {"target_policies": torch.full((2, 2, 9), 1 / 9), "unroll_obs": obs[:, None].repeat(1, 2, 1),
         "legal": legal[:, None].repeat(1, 2, 1), "masks": torch.ones(2, 2)}
    pi = mz.reanalysed_targets(st, cfg, b, torch.zeros(2, 2))[1]
    assert torch.allclose(pi.sum(-1), torch.ones(2, 2))
    assert (pi[~b["legal"]] == 0).all()


def test_unroll_loss_is_the_sum_of_the_cross_entropies():
    torch.manual_seed(1)
    cfg = mz.MuZeroConfig(num_unroll=3, support_size=10, consistency_loss_weight=0.0, value_loss_weight=0.5)
    net = mz.MuZeroNet(4, 2, 8, (16,), 10)
    b = _batch()
    z = torch.rand(6, 4) * 5
    loss, v0, parts = mz.unroll_loss(net, b, z, b["target_policies"], cfg)
    # the same sums written out step by step (the 1/K scaling touches only gradients)
    s, p, v = net.initial_inference(b["obs"])
    total = torch.zeros(6)
    for k in range(4):
        if k:
            s, r, p, v = net.recurrent_inference(s, b["actions"][:, k - 1])
            total = total - (scalar_to_support(b["target_rewards"][:, k], 10) * torch.log_softmax(r, -1)).sum(-1)
        total = total - 0.5 * (scalar_to_support(z[:, k], 10) * torch.log_softmax(v, -1)).sum(-1)
        total = total - (b["target_policies"][:, k] * torch.log_softmax(p, -1)).sum(-1)
    torch.testing.assert_close(loss, total)
    assert v0.shape == (6,) and set(parts) >= {"losses/value", "losses/reward", "losses/policy"}


@pytest.mark.parametrize("form", ["cosine", "mse", "centered"])
def test_the_consistency_loss_compares_each_unrolled_state_with_the_encoded_observation(form):
    torch.manual_seed(2)
    cfg = mz.MuZeroConfig(num_unroll=3, support_size=10, consistency_loss=form)
    net = mz.MuZeroNet(4, 2, 8, (16,), 10)
    b = _batch()
    b["unroll_seen"][0, 2:] = 0  # past the end of a game: no target there
    parts = mz.unroll_loss(net, b, torch.zeros(6, 4), b["target_policies"], cfg)[2]
    with torch.no_grad():
        s = net.initial_inference(b["obs"])[0]
        want = torch.zeros(6)
        for k in range(1, 4):
            s = net.recurrent_inference(s, b["actions"][:, k - 1])[0]
            h = net.initial_inference(b["unroll_obs"][:, k])[0]
            if form == "centered":
                s_c, h_c = s - s.mean(-1, keepdim=True), h - h.mean(-1, keepdim=True)
                gap = -(s_c * h_c).sum(-1) / (s_c.norm(dim=-1) * h_c.norm(dim=-1))
            elif form == "mse":
                gap = (s - h).square().sum(-1)
            else:
                gap = -torch.nn.functional.cosine_similarity(s, h, dim=-1)
            want += gap * b["unroll_seen"][:, k]
    torch.testing.assert_close(parts["losses/consistency"], want.mean())
    with pytest.raises(ConfigError, match="consistency_loss"):
        mz.MuZeroConfig(consistency_loss="l1")


def test_the_centered_consistency_ignores_a_shift_that_the_cosine_sees():
    s, h = torch.rand(5, 16), torch.rand(5, 16)
    centered = mz.consistency_gap(s, h, "centered")
    torch.testing.assert_close(mz.consistency_gap(s + 3.0, h - 1.0, "centered"), centered)
    assert not torch.allclose(mz.consistency_gap(s + 3.0, h, "cosine"), mz.consistency_gap(s, h, "cosine"))
    torch.testing.assert_close(mz.consistency_gap(h, h, "centered"), torch.full((5,), -1.0))
    torch.testing.assert_close(mz.consistency_gap(-h, h, "centered"), torch.ones(5))  # anti-correlated: the maximum


def test_bad_config_values_are_refused():
    with pytest.raises(ConfigError, match="search"):
        mz.MuZeroConfig(search="mcts")
    with pytest.raises(ConfigError, match="temperatures"):
        mz.MuZeroConfig(temperatures=(1.0,), temperature_stages=(0.5,))


def test_a_box_action_space_is_refused():
    with pytest.raises(ConfigError, match="Discrete"):
        mz.train("Pendulum-v1", mz.MuZeroConfig(**TINY), total_steps=10)


@pytest.mark.parametrize("search", ["puct", "gumbel"])
def test_a_short_run_acts_saves_and_loads(tmp_path, search):
    torch.set_num_threads(1)
    agent = mz.train("CartPole-v1", mz.MuZeroConfig(**TINY, search=search), total_steps=120, seed=0)
    assert agent.meta["n_updates"] == int((120 - 40) * 0.25)
    obs = np.random.default_rng(0).uniform(-0.05, 0.05, size=(5, 4)).astype(np.float32)
    actions = agent.act(obs)
    assert actions.shape == (5,) and set(actions.tolist()) <= {0, 1}
    agent.save(tmp_path / "mz")
    loaded = load_agent(tmp_path / "mz")
    np.testing.assert_array_equal(loaded.act(obs), actions)
    loaded.model.use_search = False  # the raw policy head
    assert set(loaded.act(obs).tolist()) <= {0, 1}
    result = agent.evaluate(2, seed=3)
    assert len(result.returns) == 2 and all(n >= 8 for n in result.lengths)


def test_symmetries_of_an_env_without_them_are_refused():
    with pytest.raises(ConfigError, match="no symmetries of CartPole-v1"):
        mz.train("CartPole-v1", mz.MuZeroConfig(**TINY, augment_symmetries=True), total_steps=10)


def test_the_board_encoder_shares_its_filters_across_the_board():
    from rlworks.core.nets import BoardEncoder

    torch.manual_seed(0)
    enc = BoardEncoder((3, 3, 3), channels=4, blocks=1, out_dim=5)
    obs = torch.rand(2, 6, 27)  # any leading shape; the last axis is C·H·W
    assert enc(obs).shape == (2, 6, 5)
    # without the linear read-out the tower is a convolution: shifting a board shifts its features, away from the
    # edges (three 3×3 layers see three cells to each side: columns 3-7 and 4-8 of a 12-wide row never see the padding)
    wide = BoardEncoder((2, 1, 12), channels=4, blocks=1, out_dim=5).double()
    board = torch.rand(1, 2, 1, 12, dtype=torch.float64)
    shifted = torch.roll(board, 1, dims=-1)

    def tower(x):
        h = wide.stem(x)
        return wide.act(h + wide.blocks[0](h))

    torch.testing.assert_close(tower(shifted)[..., 4:9], tower(board)[..., 3:8])


def test_a_board_encoder_of_the_wrong_size_is_refused():
    with pytest.raises(ConfigError, match="three positive sizes"):
        mz.MuZeroConfig(board_planes=(3, 9))
    with pytest.raises(ConfigError, match="holds 18 numbers, the observations 27"):
        mz.build_actor({"obs_dim": 27, "act_dim": 9}, {"discount": 1.0}, mz.MuZeroConfig(board_planes=(2, 3, 3)))


def test_a_short_tictactoe_run_with_the_board_encoder_saves_and_loads(tmp_path):
    torch.set_num_threads(1)
    cfg = mz.MuZeroConfig(**{**TINY, "board_planes": (3, 3, 3), "board_channels": 4}, discount=1.0)
    agent = mz.train("rlworks/TicTacToe-v0", cfg, total_steps=120, seed=0)
    obs = np.zeros((2, 27), dtype=np.float32)
    obs[:, 18:] = 1.0  # the empty board, X to move
    agent.save(tmp_path / "mz")
    np.testing.assert_array_equal(load_agent(tmp_path / "mz").act(obs), agent.act(obs))


def test_weight_averaging_leaves_training_alone_and_the_agent_acts_with_the_average(tmp_path):
    from rlworks.core.run import RunContext

    torch.set_num_threads(1)
    sessions, expected = [], {}

    def follow(s):  # after each env step (at most one gradient step here): θ̄ ← 0.9 θ̄ + 0.1 θ by hand
        if s.averaged is not None and s.n_updates != expected.get("n", 0):
            assert s.n_updates == expected.get("n", 0) + 1
            theta = [p.detach().clone() for p in s.acting.parameters()]
            expected["avg"] = [0.9 * e + 0.1 * p for e, p in zip(expected["avg"], theta)]
            expected["n"] = s.n_updates
        return False

    def run(**over):
        def start(s):
            sessions.append(s)
            expected["avg"] = [p.detach().clone() for p in s.acting.parameters()]  # the average starts at θ₀

        cfg = mz.MuZeroConfig(**{**TINY, "learning_starts": 80}, **over)  # (a finished game in the replay by then)
        return mz.train("CartPole-v1", cfg, total_steps=160, seed=0,
                        run=RunContext(on_start=start, callback=follow, checkpoint_dir=tmp_path / f"ck{len(sessions)}",
                                       checkpoint_every=160))

    plain, averaged = run(), run(weight_average=0.9)
    assert expected["n"] == averaged.meta["n_updates"] > 0
    for a, e in zip(averaged.model.parameters(), expected["avg"], strict=True):
        torch.testing.assert_close(a.detach(), e)
    with pytest.raises(ConfigError, match="weight_average"):
        mz.MuZeroConfig(weight_average=1.0)
    latest = sessions[1].agent(latest=True).model
    for p, q in zip(plain.model.parameters(), latest.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)  # the same gradient steps from the same weights
    assert averaged.model is sessions[1].averaged
    assert any(not torch.equal(p, q) for p, q in zip(averaged.model.parameters(), latest.parameters()))
    obs = np.random.default_rng(0).uniform(-0.05, 0.05, size=(5, 4)).astype(np.float32)
    for loaded in (load_agent(tmp_path / "ck1"), load_agent(averaged.save(tmp_path / "agent"))):
        for p, q in zip(loaded.model.parameters(), averaged.model.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=0, atol=0)  # a training checkpoint and a saved agent: θ̄
        np.testing.assert_array_equal(loaded.act(obs), averaged.act(obs))
    from rlworks.core.checkpoint import CheckpointError

    with pytest.raises(CheckpointError, match="written without weight_average"):
        mz.train("CartPole-v1", mz.MuZeroConfig(**TINY, weight_average=0.9), total_steps=240, seed=0,
                 run=RunContext(resume_from=tmp_path / "ck0"))
