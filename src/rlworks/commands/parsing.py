"""argparse with rlworks' error contract: a bad flag is one line and exit code 2, no usage dump."""

from __future__ import annotations

import argparse

from rlworks.config import ConfigError, suggest


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise ConfigError (with a did-you-mean for unknown flags)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # type: ignore[override]
        if message.startswith("unrecognized arguments:"):
            flags = [w for w in message.split(":", 1)[1].split() if w.startswith("-")]
            known = [o for a in self._actions for o in a.option_strings]
            hint = suggest(flags[0].split("=")[0], known, cutoff=0.75) if flags else ""
            raise ConfigError(f"{self.prog}: {message}{hint}; see `{self.prog} --help`")
        raise ConfigError(f"{self.prog}: {message}")


def check_device(device: str) -> str:
    """``--device`` as the commands accept it: cpu, cuda or cuda:N."""
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ConfigError(f"--device {device!r} is not one of 'cpu', 'cuda'{suggest(device, ['cpu', 'cuda'])}")
    return device
