"""Generic checkpointing of an algorithm's typed training state.

An algorithm keeps what it learns in a dataclass: ``nn.Module`` fields (networks, targets, a learnable
temperature), optimizer fields (``core.optim``), plain tensors (e.g. Bootstrapped DQN's active head per
env) and plain counters (``int``/``float``/``bool``). These
two functions turn such a dataclass into checkpoint tensors plus JSON and back, so no algorithm writes
its own save/load code and no state hides in a string-keyed dict.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn


def _optimizer(value: Any) -> bool:
    return hasattr(value, "param_groups") and hasattr(value, "state_dict") and not isinstance(value, nn.Module)


def state_tensors(state: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(tensors, json)`` of a state dataclass: ``<field>/<param>`` for modules,
    ``optim/<field>/<buffer>`` for optimizers (their learning rates in the JSON), ``tensor/<field>`` for
    tensors, counters in the JSON."""
    tensors: dict[str, torch.Tensor] = {}
    data: dict[str, Any] = {"lr": {}, "counters": {}}
    for f in dataclasses.fields(state):
        value = getattr(state, f.name)
        if isinstance(value, nn.Module):
            tensors.update({f"{f.name}/{k}": v for k, v in value.state_dict().items()})
        elif _optimizer(value):
            tensors.update({f"optim/{f.name}/{k}": v for k, v in value.state_dict().items()})
            data["lr"][f.name] = value.param_groups[0]["lr"]
        elif isinstance(value, torch.Tensor):
            tensors[f"tensor/{f.name}"] = value
        elif isinstance(value, (bool, int, float)):
            data["counters"][f.name] = value
    return tensors, data


def load_state_tensors(state: Any, tensors: dict[str, torch.Tensor], data: dict[str, Any]) -> None:
    """Inverse of ``state_tensors``, in place. Raises KeyError/RuntimeError when they do not match."""
    for f in dataclasses.fields(state):
        value = getattr(state, f.name)
        if isinstance(value, nn.Module):
            pre = f"{f.name}/"
            value.load_state_dict({k[len(pre):]: v for k, v in tensors.items() if k.startswith(pre)})
        elif _optimizer(value):
            pre = f"optim/{f.name}/"
            value.load_state_dict({k[len(pre):]: v for k, v in tensors.items() if k.startswith(pre)})
            value.param_groups[0]["lr"] = float(data["lr"][f.name])
        elif isinstance(value, torch.Tensor):
            saved = tensors[f"tensor/{f.name}"]
            if saved.shape != value.shape:
                raise ValueError(f"{f.name}: saved shape {tuple(saved.shape)}, expected {tuple(value.shape)}")
            value.copy_(saved)
        elif isinstance(value, (bool, int, float)) and f.name in data["counters"]:
            setattr(state, f.name, type(value)(data["counters"][f.name]))


def modules(state: Any) -> dict[str, nn.Module]:
    """The state's networks by field name."""
    return {f.name: getattr(state, f.name) for f in dataclasses.fields(state)
            if isinstance(getattr(state, f.name), nn.Module)}
