"""Networks a user can shape: image observations (layout, uint8 storage), the Nature CNN chosen
automatically, actor/critic sizes, shared trunks, a user's own extractor by import path, and old
checkpoints that predate all of it."""

from __future__ import annotations

import textwrap

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlworks import algos
from rlworks.algos.agent import build_model
from rlworks.config import ConfigError
from rlworks.core import features
from rlworks.core.checkpoint import save_checkpoint
from rlworks.core.features import Encoder, NatureCNN, image_layout
from rlworks.core.vec import space_spec


class BarEnv(gym.Env):
    """A bright bar in one of ``n`` columns of a 36×36 frame; the action naming that column earns 1."""

    def __init__(self, layout: str = "hwc", n: int = 3, length: int = 8) -> None:
        self.layout, self.n, self.length = layout, n, length
        shape = {"hwc": (36, 36, 1), "chw": (1, 36, 36)}[layout]
        self.observation_space = gym.spaces.Box(0, 255, shape, np.uint8)
        self.action_space = gym.spaces.Discrete(n)

    def _obs(self) -> np.ndarray:
        img = np.zeros((36, 36), np.uint8)
        w = 36 // self.n
        img[6:30, self.side * w + 2:(self.side + 1) * w - 2] = 255
        return img[:, :, None] if self.layout == "hwc" else img[None]

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.side = 0, int(self.np_random.integers(self.n))
        return self._obs(), {}

    def step(self, action):
        reward = float(int(action) == self.side)
        self.t += 1
        self.side = int(self.np_random.integers(self.n))
        return self._obs(), reward, False, self.t >= self.length, {}


SMALL_PPO = dict(n_envs=2, n_steps=16, batch_size=32, n_epochs=1)


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


# -- image observations ------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape, layout", [
    ((4, 84, 84), "chw"), ((84, 84, 4), "hwc"), ((3, 64, 64), "chw"), ((96, 96, 3), "hwc"), ((1, 36, 36), "chw"),
    ((36, 36, 1), "hwc"), ((10, 84, 84), "chw"), ((84, 84, 10), "hwc"), ((84, 84), "hw"), ((4,), None),
    ((2, 3, 4, 5), None),
])
def test_image_layout_finds_the_channel_axis(shape, layout):
    assert image_layout(shape) == layout


def test_space_spec_records_shape_dtype_and_layout():
    spec = space_spec(gym.spaces.Box(0, 255, (84, 84, 4), np.uint8), gym.spaces.Discrete(4))
    assert (spec["obs_dim"], spec["obs_shape"], spec["obs_dtype"], spec["layout"]) == (84 * 84 * 4, [84, 84, 4],
                                                                                         "uint8", "hwc")
    spec = space_spec(gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2))
    assert (spec["obs_shape"], spec["obs_dtype"], spec["layout"]) == ([4], "float32", None)


def test_auto_picks_the_cnn_for_images_only():
    image = space_spec(gym.spaces.Box(0, 255, (4, 84, 84), np.uint8), gym.spaces.Discrete(4))
    vector = space_spec(gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2))
    tiny = space_spec(gym.spaces.Box(0, 255, (10, 10, 3), np.uint8), gym.spaces.Discrete(2))
    floats = space_spec(gym.spaces.Box(0, 1, (4, 84, 84)), gym.spaces.Discrete(2))
    assert features.resolve("auto", image, "x") == "cnn"
    assert features.resolve("auto", vector, "x") == "mlp"
    assert features.resolve("auto", tiny, "x") == "mlp"  # below the Nature CNN's 36x36
    assert features.resolve("auto", floats, "x") == "mlp"  # not uint8: not assumed to be pixels
    assert features.resolve("cnn", floats, "x") == "cnn"  # but may be asked for
    with pytest.raises(ConfigError, match="at least 36x36"):
        features.resolve("cnn", tiny, "x")


def test_cnn_on_a_vector_observation_is_a_config_error():
    with pytest.raises(ConfigError, match="features='cnn' needs an image observation.*CartPole-v1"):
        algos.train("ppo", "CartPole-v1", total_steps=64, features="cnn", **SMALL_PPO)
    with pytest.raises(ConfigError, match="features='cnn' needs an image"):
        algos.train("dqn", "CartPole-v1", total_steps=64, features="cnn")
    with pytest.raises(ConfigError, match="features='resnet' is not allowed"):
        algos.train("ppo", "CartPole-v1", total_steps=64, features="resnet")


def test_encoder_reads_hwc_and_chw_alike_and_scales_bytes_on_the_device():
    torch.manual_seed(0)
    body = NatureCNN((4, 36, 36))
    img = np.random.default_rng(0).integers(0, 256, (2, 4, 36, 36), dtype=np.uint8)  # (B, C, H, W)
    chw = Encoder(body, (4, 36, 36), "chw")(torch.from_numpy(img.reshape(2, -1)))
    hwc = Encoder(body, (36, 36, 4), "hwc")(torch.from_numpy(img.transpose(0, 2, 3, 1).reshape(2, -1).copy()))
    floats = body(torch.from_numpy(img).float() / 255)
    torch.testing.assert_close(chw, floats)
    torch.testing.assert_close(hwc, floats)
    assert chw.shape == (2, 512)


def test_nature_cnn_shapes():
    net = NatureCNN((4, 84, 84))
    assert [tuple(p.shape) for p in net.parameters()] == [(32, 4, 8, 8), (32,), (64, 32, 4, 4), (64,), (64, 64, 3, 3),
                                                          (64,), (512, 3136), (512,)]


# -- actor/critic sizes and shared trunks ------------------------------------------------------------------


def _shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


VECTOR_SPEC = space_spec(gym.spaces.Box(-1, 1, (4,)), gym.spaces.Discrete(2))
NET = {"hidden": [64, 64], "activation": "tanh", "layer_norm": False, "critic": True}


def test_separate_actor_and_critic_sizes():
    model = build_model(VECTOR_SPEC, {**NET, "actor_hidden": [32], "critic_hidden": [128, 16]})
    assert _shapes(model) == {"actor.0.weight": (32, 4), "actor.0.bias": (32,), "actor.2.weight": (2, 32),
                              "actor.2.bias": (2,), "critic.0.weight": (128, 4), "critic.0.bias": (128,),
                              "critic.2.weight": (16, 128), "critic.2.bias": (16,), "critic.4.weight": (1, 16),
                              "critic.4.bias": (1,)}
    assert model.plain


def test_shared_trunk_feeds_both_heads():
    model = build_model(VECTOR_SPEC, {**NET, "hidden": [64], "shared_trunk": True, "critic_hidden": [8]})
    assert _shapes(model) == {"trunk.0.weight": (64, 4), "trunk.0.bias": (64,), "actor.0.weight": (2, 64),
                              "actor.0.bias": (2,), "critic.0.weight": (8, 64), "critic.0.bias": (8,),
                              "critic.2.weight": (1, 8), "critic.2.bias": (1,)}
    assert not model.plain
    obs = torch.randn(5, 4)
    a, logp, v = model.sample(obs, torch.Generator().manual_seed(0))
    assert a.shape == logp.shape == v.shape == (5,)


def test_cnn_shared_trunk_is_sb3s_cnn_policy():
    spec = space_spec(gym.spaces.Box(0, 255, (4, 84, 84), np.uint8), gym.spaces.Discrete(4))
    model = build_model(spec, {**NET, "hidden": [], "shared_trunk": True, "features": "cnn"})
    shapes = _shapes(model)
    assert shapes["trunk.0.body.fc.0.weight"] == (512, 3136)
    assert shapes["actor.0.weight"] == (4, 512) and shapes["critic.0.weight"] == (1, 512)
    assert sum(p.numel() for p in model.parameters()) == 1_686_693  # as many as SB3's CnnPolicy on Breakout
    separate = build_model(spec, {**NET, "features": "cnn"})  # one CNN each, then 64x64 heads
    assert {k.split(".")[0] for k in _shapes(separate)} == {"actor_encoder", "critic_encoder", "actor", "critic"}


def test_a_checkpoint_from_before_the_network_options_still_loads(tmp_path):
    agent = algos.train("ppo", "CartPole-v1", total_steps=64, seed=0, **SMALL_PPO)
    state = agent.state()
    for key in ("actor_hidden", "critic_hidden", "shared_trunk", "features"):
        del state["net"][key]
    for key in ("obs_shape", "obs_dtype", "layout"):
        del state["spec"][key]
    for key in ("actor_hidden", "critic_hidden", "shared_trunk", "features"):
        del state["config"][key]  # the config of an older version had none of these fields
    tensors = {f"model/{k}": v for k, v in agent.model.state_dict().items()}
    save_checkpoint(tmp_path, 64, tensors, {"agent": state})
    old = algos.load(tmp_path)
    obs = np.random.default_rng(0).normal(size=(6, 4))
    np.testing.assert_array_equal(old.act(obs), agent.act(obs))
    assert old.act(obs[0]) == agent.act(obs[0])


# -- images through training, acting, saving and loading -----------------------------------------------------


@pytest.mark.parametrize("layout", ["hwc", "chw"])
def test_ppo_on_pixels_uses_the_cnn_autograd_and_uint8_rollouts(layout, tmp_path):
    seen = {}

    def look(session):
        seen["rollout"] = session.sampler._buf.obs.dtype
        seen["backend"] = session.backend

    agent = algos.train("ppo", lambda: BarEnv(layout), total_steps=64, seed=0, shared_trunk=True, hidden=[],
                        callback=look, **SMALL_PPO)
    assert agent.net["features"] == "cnn" and seen == {"rollout": np.uint8, "backend": "autograd"}
    assert agent.meta["backend"] == "autograd"
    obs, _ = BarEnv(layout).reset(seed=0)
    agent.save(tmp_path)
    loaded = algos.load(tmp_path)
    batch = np.stack([obs, obs[::-1].copy()])
    np.testing.assert_array_equal(loaded.act(batch), agent.act(batch))
    assert isinstance(loaded.act(obs), int)
    assert loaded.evaluate(2, seed=0, env=lambda: BarEnv(layout)).lengths == (8, 8)


def test_fused_backend_with_a_cnn_is_refused():
    with pytest.raises(ConfigError, match="backend='fused' handles MLPs.*features='cnn'"):
        algos.train("ppo", lambda: BarEnv(), total_steps=64, backend="fused", **SMALL_PPO)
    with pytest.raises(ConfigError, match="backend='fused' handles MLPs.*features='cnn'"):
        algos.train("dqn", lambda: BarEnv(), total_steps=64, backend="fused")


def test_dqn_on_pixels_stores_bytes_and_acts_with_the_cnn(tmp_path):
    agent = algos.train("dqn", lambda: BarEnv(), total_steps=200, seed=0, learning_starts=50, buffer_size=500,
                        hidden=[], batch_size=16)
    assert agent.meta["backend"] == "autograd" and agent.net["features"] == "cnn"
    assert agent.model.encoder is not None
    obs, _ = BarEnv().reset(seed=0)
    agent.save(tmp_path)
    loaded = algos.load(tmp_path)
    assert loaded.act(obs) == agent.act(obs)
    assert loaded.evaluate(1, seed=0, env=lambda: BarEnv()).lengths == (8,)


USER_MODULE = '''
import torch
from torch import nn


class TinyConv(nn.Module):
    """A user's extractor: one strided convolution, then a linear layer."""

    def __init__(self, obs_shape):
        super().__init__()
        c, h, w = obs_shape
        self.conv = nn.Conv2d(c, 4, 6, stride=6)
        self.features_dim = 16
        self.fc = nn.Linear(4 * (h // 6) * (w // 6), self.features_dim)

    def forward(self, x):
        return torch.relu(self.fc(torch.relu(self.conv(x)).flatten(1)))
'''


def test_a_users_module_by_import_path_trains_saves_and_loads(tmp_path, monkeypatch):
    (tmp_path / "my_extractors.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    agent = algos.train("ppo", lambda: BarEnv(), total_steps=64, seed=0, features="my_extractors:TinyConv",
                        actor_hidden=[8], critic_hidden=[], **SMALL_PPO)
    assert type(agent.model.actor_encoder.body).__name__ == "TinyConv"
    assert agent.model.actor[0].in_features == 16
    agent.save(tmp_path / "agent")
    loaded = algos.load(tmp_path / "agent")
    obs, _ = BarEnv().reset(seed=1)
    assert loaded.act(obs) == agent.act(obs)
    dqn = algos.train("dqn", lambda: BarEnv(), total_steps=64, seed=0, features="my_extractors:TinyConv",
                      learning_starts=32, buffer_size=100)
    assert type(dqn.model.encoder.body).__name__ == "TinyConv"


def test_a_users_module_that_cannot_be_imported_is_a_config_error():
    with pytest.raises(ConfigError, match="features='no_such_module:Net': cannot import it"):
        algos.train("ppo", lambda: BarEnv(), total_steps=64, features="no_such_module:Net", **SMALL_PPO)


class BoxActionBarEnv(BarEnv):
    """BarEnv with a continuous action (its first coordinate picks the column)."""

    action_space = gym.spaces.Box(-1, 1, (1,))

    def __init__(self) -> None:
        super().__init__()
        self.action_space = BoxActionBarEnv.action_space

    def step(self, action):
        return super().step(min(int((float(action[0]) + 1) * 1.5), 2))


@pytest.mark.parametrize("algo", ["sac", "td3"])
def test_sac_and_td3_refuse_images_instead_of_flattening_them(algo):
    with pytest.raises(ConfigError, match=f"{algo} has no image feature extractor yet.*use ppo or a2c"):
        algos.train(algo, BoxActionBarEnv, total_steps=64)
    agent = algos.train("ppo", BoxActionBarEnv, total_steps=64, **SMALL_PPO)  # PPO takes them, with the CNN
    assert agent.net["features"] == "cnn" and agent.act(BoxActionBarEnv().reset(seed=0)[0]).shape == (1,)
