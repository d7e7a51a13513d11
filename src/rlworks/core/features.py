"""Feature extractors: what turns an observation into the vector the policy and value heads read.

The config field ``features`` chooses one:

* ``"mlp"``: the flat observation itself; the heads are MLPs on it (every vector observation);
* ``"cnn"``: the Nature CNN of Mnih et al. 2015 (Methods, "Model architecture": 32 8×8 filters stride 4,
  64 4×4 stride 2, 64 3×3 stride 1, a 512-unit layer, ReLU after each) on an image observation;
* ``"auto"`` (default): ``cnn`` for a uint8 image of at least 36×36 pixels (the Nature CNN's smallest
  input), else ``mlp``;
* ``"package.module:Name"``: a user's own ``nn.Module`` class, imported by that path (so a checkpoint can
  rebuild it; the module must be importable where the agent is loaded). Contract:
  ``Name(obs_shape: tuple[int, ...])`` builds a module with an ``int`` attribute ``features_dim``; its
  ``forward`` takes a float32 batch ``(B, *obs_shape)`` and returns ``(B, features_dim)``. For an image
  ``obs_shape`` is ``(C, H, W)``, channels first, and uint8 pixels arrive scaled to [0, 1].

Observations are stored flat, in the env's dtype (uint8 frames stay uint8 in rollouts and replay):
``Encoder`` restores the shape on the device, moves channels first and scales pixels, so the stored
bytes cross to the device once and the float copy exists only inside the forward pass.

An image is a Box of rank 3 (or rank 2: one grey channel). ``image_layout`` finds the channel axis:
the first axis if it is ≤ 4 and the last is not, the last if it is ≤ 4 and the first is not; else the
axis whose size differs when the other two are equal (square frames, e.g. (4, 84, 84) or (84, 84, 4));
else the last (gymnasium's ``rgb_array`` convention, (H, W, C)).
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..config import ConfigError

CHOICES = ("auto", "mlp", "cnn")
MIN_CNN_SIZE = 36  # the Nature CNN's three convolutions need 36×36 pixels to leave a 1×1 map
_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def check_features(value: str) -> None:
    """Config validation of a ``features`` value (its syntax; the class is imported when the net is built)."""
    if value not in CHOICES and not (isinstance(value, str) and _PATH.match(value)):
        raise ConfigError(f"features={value!r} is not allowed: use auto, mlp, cnn or 'package.module:ClassName' "
                          "(an nn.Module class built as ClassName(obs_shape) with an int attribute features_dim)")


def check_sizes(name: str, sizes: Sequence[int] | None, *, empty: bool = True) -> None:
    """Config validation of a hidden-layer list; ``empty``: whether () (a linear head) is allowed."""
    if sizes is None:
        return
    if (not empty and not sizes) or any(not isinstance(h, int) or isinstance(h, bool) or h < 1 for h in sizes):
        what = "a non-empty list" if not empty else "a list"
        raise ConfigError(f"{name}={sizes!r} must be {what} of positive layer sizes")


def check_network(cfg: Any) -> None:
    """Config validation of the network fields an algorithm has (hidden, actor_hidden, critic_hidden,
    features): each present one is checked."""
    for name in ("hidden", "actor_hidden", "critic_hidden"):
        if hasattr(cfg, name):
            check_sizes(name, getattr(cfg, name))
    if hasattr(cfg, "features"):
        check_features(cfg.features)


def image_layout(shape: Sequence[int]) -> str | None:
    """``"chw"``, ``"hwc"`` or ``"hw"`` (one grey channel) for an image-shaped observation, else None
    (the rule is in the module docstring)."""
    shape = tuple(int(d) for d in shape)
    if len(shape) == 2:
        return "hw"
    if len(shape) != 3:
        return None
    first, mid, last = shape
    if first <= 4 < last:
        return "chw"
    if last <= 4 < first:
        return "hwc"
    if mid == last != first:
        return "chw"
    return "hwc"


def chw(shape: Sequence[int], layout: str) -> tuple[int, int, int]:
    """The (C, H, W) shape of an image stored in ``layout``."""
    if layout == "hw":
        return (1, int(shape[0]), int(shape[1]))
    if layout == "hwc":
        return (int(shape[2]), int(shape[0]), int(shape[1]))
    return (int(shape[0]), int(shape[1]), int(shape[2]))


def resolve(features: str, spec: dict[str, Any], where: str) -> str:
    """The extractor a run uses: ``mlp``, ``cnn`` or a class path (``auto`` decided from the observation)."""
    layout = spec.get("layout")
    if features == "auto":
        if layout is None or spec.get("obs_dtype") != "uint8":
            return "mlp"
        _, h, w = chw(spec["obs_shape"], layout)
        return "cnn" if min(h, w) >= MIN_CNN_SIZE else "mlp"
    if features == "cnn":
        if layout is None:
            raise ConfigError(f"features='cnn' needs an image observation (a Box of shape (C, H, W), (H, W, C) or "
                              f"(H, W)); {where} has observations of shape {tuple(spec['obs_shape'])}: use "
                              "features=mlp or auto")
        _, h, w = chw(spec["obs_shape"], layout)
        if min(h, w) < MIN_CNN_SIZE:
            raise ConfigError(f"features='cnn' (the Nature CNN) needs images of at least {MIN_CNN_SIZE}x{MIN_CNN_SIZE} "
                              f"pixels; {where} has {h}x{w}: use features=mlp or your own module "
                              "('package.module:ClassName')")
    return features


def refuse_images(spec: dict[str, Any], algo: str, where: str) -> None:
    """For algorithms without an image extractor (SAC, TD3): a ConfigError instead of an MLP silently
    trained on thousands of flattened pixels."""
    if resolve("auto", spec, where) != "mlp":
        raise ConfigError(f"{algo} has no image feature extractor yet, and {where} has image observations "
                          f"{tuple(spec['obs_shape'])}: use ppo or a2c (their features=auto picks the Nature CNN), or "
                          "wrap the env to give vector observations")


# ---------------------------------------------------------------------------------------------
# modules
# ---------------------------------------------------------------------------------------------


class NatureCNN(nn.Module):
    """Mnih et al. 2015's network up to its 512-unit layer: (B, C, H, W) floats → (B, 512) features.
    Orthogonal init with gain √2 (as SB3's CnnPolicy and CleanRL's ppo_atari.py)."""

    def __init__(self, obs_shape: Sequence[int], features_dim: int = 512) -> None:
        super().__init__()
        c, h, w = (int(d) for d in obs_shape)
        self.conv = nn.Sequential(
            nn.Conv2d(c, 32, 8, stride=4), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(),
            nn.Flatten(),
        )
        for k, s in ((8, 4), (4, 2), (3, 1)):  # each valid convolution: n → (n − k) // s + 1
            h, w = (h - k) // s + 1, (w - k) // s + 1
        self.fc = nn.Sequential(nn.Linear(64 * h * w, features_dim), nn.ReLU())
        self.features_dim = features_dim
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.orthogonal_(m.weight, math.sqrt(2.0))
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():  # training batches: NHWC convolutions are faster on CPU (docs/benchmarks.md)
            x = x.contiguous(memory_format=torch.channels_last)
        return self.fc(self.conv(x))


class Encoder(nn.Module):
    """Flat stored observations (B, obs_dim) → the body's features (B, features_dim): the observation's
    shape restored, image channels moved first, uint8 pixels scaled to [0, 1] — all on the device."""

    def __init__(self, body: nn.Module, shape: Sequence[int], layout: str | None) -> None:
        super().__init__()
        self.body, self.shape, self.layout = body, tuple(int(d) for d in shape), layout
        self.features_dim = int(body.features_dim)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.reshape(obs.shape[0], *self.shape)
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        elif x.dtype != torch.float32:
            x = x.float()
        if self.layout == "hwc":
            x = x.permute(0, 3, 1, 2)
        elif self.layout == "hw":
            x = x.unsqueeze(1)
        return self.body(x)


def user_class(path: str) -> type:
    """The class ``package.module:Name`` names, or a ConfigError saying why it cannot be used."""
    mod_name, _, cls_name = path.partition(":")
    try:
        cls = getattr(importlib.import_module(mod_name), cls_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"features={path!r}: cannot import it ({exc}); the module must be importable (on "
                          "sys.path) where the network is built or loaded") from None
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ConfigError(f"features={path!r} is not an nn.Module class")
    return cls


def build_encoder(features: str, spec: dict[str, Any]) -> Encoder | None:
    """The extractor a resolved ``features`` value names, for observations described by ``spec``
    (``core.vec.space_spec``); None for ``mlp`` (the heads read the flat observation)."""
    if features == "mlp":
        return None
    layout = spec.get("layout")
    shape = spec.get("obs_shape") or [spec["obs_dim"]]
    in_shape = chw(shape, layout) if layout is not None else tuple(shape)
    if features == "cnn":
        return Encoder(NatureCNN(in_shape), shape, layout)
    body = user_class(features)(tuple(in_shape))
    dim = getattr(body, "features_dim", None)
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
        raise ConfigError(f"features={features!r}: the module has features_dim={dim!r}; it must set an int "
                          "attribute features_dim >= 1 (the size of its output)")
    return Encoder(body, shape, layout)
