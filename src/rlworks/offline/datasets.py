"""Offline datasets on disk, in the Minari format (the Farama standard that d3rlpy, TorchRL and CORL read).

D4RL's files and Minari's remote datasets cannot be downloaded here, so rlworks makes its datasets with its
own agents (``rlworks.offline.collect``) and writes them where Minari keeps datasets: the folder
``$MINARI_DATASETS_PATH`` (default ``~/.minari/datasets``), one ``<dataset id>/data/`` each, holding
``main_data.hdf5`` and ``metadata.json``. ``minari.load_dataset(ID)`` reads what rlworks writes, and
``load(ID)`` here reads any Minari dataset with Box or Discrete spaces, rlworks-made or not, as the
``OfflineDataset`` every offline algorithm takes.

Writing is all or nothing: a dataset is built in a hidden temporary folder inside the datasets folder and
moved into place only once it is complete, so a run that fails leaves the datasets folder as it was.
Library code: it prints nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from ..config import ConfigError, suggest
from .data import OfflineDataset

#: Minari's id syntax, ``(namespace/)name-vN``; rlworks asks for the version (Minari's loader needs one)
DATASET_ID = re.compile(r"^(?:[\w.-]+/)*[\w.]+(?:-[\w.]+)*-v\d+$")
NAMESPACE_FILE = "namespace_metadata.json"  # Minari's per-namespace file (minari/namespace.py)
AUTHOR = "rlworks"


def datasets_root(root: str | Path | None = None) -> Path:
    """The datasets folder: ``root``, else ``$MINARI_DATASETS_PATH``, else Minari's ``~/.minari/datasets``."""
    env = os.environ.get("MINARI_DATASETS_PATH")
    path = Path(root) if root is not None else Path(env) if env else Path.home() / ".minari" / "datasets"
    return path.expanduser().absolute()  # Minari 0.5.4 cannot write under a relative path (it joins it twice)


def check_dataset_id(dataset_id: str) -> str:
    if not isinstance(dataset_id, str) or not DATASET_ID.match(dataset_id) or ".." in dataset_id.split("/"):
        raise ConfigError(f"dataset id {dataset_id!r} is not of the form NAMESPACE/ENV/NAME-vN "
                          "(e.g. rlworks/cartpole/medium-v0: letters, digits, '_', '.', '-')")
    return dataset_id


def list_datasets(root: str | Path | None = None) -> list[str]:
    """The ids of the datasets on disk under ``root`` (sorted): every folder that holds ``data/``, as Minari's
    ``list_local_datasets`` finds them (hidden folders, such as unfinished writes, are skipped)."""
    base = datasets_root(root)
    found: list[str] = []

    def walk(d: Path, prefix: str) -> None:
        if (d / "data").is_dir():
            found.append(prefix)
            return
        for child in sorted(d.iterdir()):
            if child.is_dir() and not child.name.startswith("."):
                walk(child, f"{prefix}/{child.name}" if prefix else child.name)

    if base.is_dir():
        for child in sorted(base.iterdir()):
            if child.is_dir() and not child.name.startswith("."):
                walk(child, child.name)
    return sorted(found)


def dataset_path(dataset_id: str, root: str | Path | None = None) -> Path:
    """``<root>/<dataset id>/data``; ConfigError listing the ids on disk when there is no such dataset."""
    check_dataset_id(dataset_id)
    base = datasets_root(root)
    data = base / dataset_id / "data"
    if not data.is_dir():
        ids = list_datasets(base)
        on_disk = f"on disk: {', '.join(ids)}" if ids else "none on disk yet (make one: `rlworks collect` or " \
                                                            "`rlworks datasets make ENV`)"
        raise ConfigError(f"no dataset {dataset_id!r} in {base}{suggest(dataset_id, ids)}; {on_disk}")
    return data


def read_metadata(dataset_id: str, root: str | Path | None = None) -> dict[str, Any]:
    """The dataset's ``metadata.json`` as a dict (ConfigError naming the file when it is damaged)."""
    path = dataset_path(dataset_id, root) / "metadata.json"
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: missing; the dataset {dataset_id!r} is damaged") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: unreadable, the dataset {dataset_id!r} is damaged ({exc})") from None
    if not isinstance(meta, dict):
        raise ConfigError(f"{path}: expected a JSON object; the dataset {dataset_id!r} is damaged")
    return meta


def _damaged(data: Path, dataset_id: str, exc: Exception) -> ConfigError:
    files = sorted(p.name for p in data.iterdir() if p.name != "metadata.json") if data.is_dir() else []
    where = data / files[0] if len(files) == 1 else data
    msg = " ".join(str(exc).split()) or type(exc).__name__
    return ConfigError(f"{where}: unreadable, the dataset {dataset_id!r} is damaged ({msg[:200]})")


def load(dataset_id: str, root: str | Path | None = None) -> OfflineDataset:
    """The Minari dataset ``dataset_id`` (under ``root`` or ``$MINARI_DATASETS_PATH``) as an ``OfflineDataset``:
    flat transitions, its spaces, the env it was recorded on (``env_id``, ``env_kwargs`` from its env spec)
    and its reference scores (``ref_min_score``, ``ref_max_score`` from its metadata, None where absent).

    Any Minari dataset with Box or Discrete observation and action spaces loads, rlworks-made or not.
    Errors are one-line ConfigErrors: an unknown id (listing the ids on disk), a damaged file (named)."""
    meta = read_metadata(dataset_id, root)
    data = dataset_path(dataset_id, root)
    from minari.dataset.minari_dataset import MinariDataset  # minari is heavy: imported when a dataset is read

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = MinariDataset(data)
            obs_space, act_space, spec = ds.observation_space, ds.action_space, ds.env_spec
            _check_supported(dataset_id, obs_space, act_space)
            episodes = [{"observations": ep.observations, "actions": ep.actions, "rewards": ep.rewards,
                         "terminations": ep.terminations, "truncations": ep.truncations}
                        for ep in ds.iterate_episodes()]
    except ConfigError:
        raise
    except Exception as exc:  # h5py/pyarrow/JSON errors of a damaged file: name the file, no traceback
        raise _damaged(data, dataset_id, exc) from None
    info = {k: v for k, v in meta.items() if k not in ("ref_min_score", "ref_max_score", "observation_space",
                                                        "action_space")}
    info["path"] = str(data.parent)
    if isinstance(info.get("author"), (set, list)):
        info["author"] = sorted(map(str, info["author"]))

    def ref(key: str) -> float | None:
        return None if meta.get(key) is None else float(meta[key])

    return OfflineDataset.from_episodes(
        dataset_id, episodes, obs_space, act_space, env_id=spec.id if spec is not None else None,
        env_kwargs=dict(spec.kwargs) if spec is not None else {}, ref_min_score=ref("ref_min_score"),
        ref_max_score=ref("ref_max_score"), metadata=info)


def _check_supported(dataset_id: str, obs_space: gym.Space, act_space: gym.Space) -> None:
    for what, space in (("observation", obs_space), ("action", act_space)):
        if not isinstance(space, (gym.spaces.Box, gym.spaces.Discrete)):
            raise ConfigError(f"dataset {dataset_id!r} has a {type(space).__name__} {what} space; rlworks' offline "
                              "algorithms take Box or Discrete spaces")


def _describe_space(space: gym.Space) -> str:
    if isinstance(space, gym.spaces.Discrete):
        return f"Discrete({int(space.n)})"
    if isinstance(space, gym.spaces.Box):
        return f"Box{tuple(space.shape)}"
    return type(space).__name__


def check_spaces(dataset: OfflineDataset, env: Any) -> None:
    """ConfigError unless ``env`` (an id or a ``gymnasium.Env``) has the dataset's kinds and shapes of
    observation and action spaces (Discrete: the same number of actions; Box: the same shape)."""
    own = None
    if isinstance(env, str):
        try:
            own = env = gym.make(env, **(dataset.env_kwargs if env == dataset.env_id else {}))
        except gym.error.Error as exc:
            raise ConfigError(f"cannot make env {env!r}: {exc}") from None
    try:
        name = getattr(env.spec, "id", None) or type(env.unwrapped).__name__
        for what, mine, theirs in (("observation", dataset.observation_space, env.observation_space),
                                   ("action", dataset.action_space, env.action_space)):
            if _describe_space(mine) != _describe_space(theirs):
                raise ConfigError(f"dataset {dataset.dataset_id!r} does not fit env {name}: its {what} space is "
                                  f"{_describe_space(mine)}, the env's is {_describe_space(theirs)}")
    finally:
        if own is not None:
            own.close()


def describe(dataset_id: str, root: str | Path | None = None) -> dict[str, Any]:
    """What ``rlworks datasets show ID`` prints: id, env, episodes, steps, returns (mean, min, max), the
    normalised score of the data's mean return where reference scores exist, the reference scores,
    algorithm_name, description and the path on disk."""
    ds = load(dataset_id, root)
    r = ds.episode_returns
    out: dict[str, Any] = {
        "id": dataset_id, "env": ds.env_id, "episodes": ds.n_episodes, "steps": len(ds),
        "observation_space": _describe_space(ds.observation_space), "action_space": _describe_space(ds.action_space),
        "return_mean": float(r.mean()) if len(r) else None, "return_min": float(r.min()) if len(r) else None,
        "return_max": float(r.max()) if len(r) else None,
        "ref_min_score": ds.ref_min_score, "ref_max_score": ds.ref_max_score, "normalized_score": None,
        "algorithm_name": ds.metadata.get("algorithm_name"), "description": ds.metadata.get("description"),
        "author": ds.metadata.get("author"), "path": ds.metadata.get("path")}
    if len(r) and ds.ref_min_score is not None and ds.ref_max_score is not None \
            and ds.ref_max_score != ds.ref_min_score:
        out["normalized_score"] = float(ds.normalized_score(r.mean()))
    return out


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _minari_root(path: Path) -> Iterator[None]:
    """Point Minari at ``path`` for the duration (it reads ``MINARI_DATASETS_PATH`` at each call); restored after."""
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(path)
    try:
        yield
    finally:
        if old is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def check_writable(dataset_id: str, root: str | Path | None = None, overwrite: bool = False) -> Path:
    """The dataset's folder, after checking that a write may go there (a valid id; no dataset of that id
    unless ``overwrite``). Called before any work starts, so a refused run costs nothing."""
    check_dataset_id(dataset_id)
    target = datasets_root(root) / dataset_id
    if target.exists() and not overwrite:
        raise ConfigError(f"dataset {dataset_id!r} already exists at {target}; pass --overwrite (overwrite=True) "
                          "to replace it, or choose another id or version")
    for parent in (target, *target.parents):
        if parent == datasets_root(root):
            break
        if (parent / "data").is_dir() and parent != target:
            raise ConfigError(f"dataset id {dataset_id!r} would lie inside the dataset {parent.name!r}")
    return target


@contextlib.contextmanager
def staging(root: str | Path | None = None) -> Iterator[Path]:
    """A hidden temporary folder inside the datasets folder (same file system: moves out of it are renames), removed
    on exit; if the datasets folder did not exist and nothing was installed, it is removed again too."""
    base = datasets_root(root)
    created = None  # the outermost folder this call creates
    for p in (base, *base.parents):
        if p.exists():
            break
        created = p
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".rlworks-tmp-", dir=base))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if created is not None and not list_datasets(base):
            shutil.rmtree(created, ignore_errors=True)


def install(stage: Path, dataset_ids: Sequence[str], root: str | Path | None = None,
            overwrite: bool = False) -> None:
    """Move the complete datasets ``dataset_ids`` from the staging folder ``stage`` (``staging``) into the datasets
    folder, with the namespace folders (and Minari's namespace files) it does not have yet. Each move is a rename;
    with ``overwrite`` an existing dataset is swapped out into ``stage`` (removed with it) first. If a move fails,
    what this call moved and created is taken back out."""
    base = datasets_root(root)
    for i in dataset_ids:
        check_writable(i, base, overwrite)
    new_dirs: list[Path] = []
    moved: list[tuple[Path, Path, Path | None]] = []
    try:
        for n, dataset_id in enumerate(dataset_ids):
            rel, target = Path(dataset_id), base / dataset_id
            for ns in reversed(rel.parents[:-1]):
                if not (base / ns).is_dir():
                    (base / ns).mkdir()
                    new_dirs.append(base / ns)
                    if (stage / ns / NAMESPACE_FILE).is_file():
                        shutil.copy2(stage / ns / NAMESPACE_FILE, base / ns / NAMESPACE_FILE)
            old = None
            if target.exists():  # overwrite (checked above)
                old = stage / f".replaced-{n}"
                os.replace(target, old)
            moved.append((stage / rel, target, old))
            os.replace(stage / rel, target)
    except BaseException:
        for src, target, old in reversed(moved):
            if target.exists() and not src.exists():
                os.replace(target, src)
            if old is not None and old.exists():
                os.replace(old, target)
        for d in reversed(new_dirs):
            shutil.rmtree(d, ignore_errors=True)
        raise


def save(dataset_id: str, episodes: Sequence[dict[str, np.ndarray]], env: str, *, env_kwargs: dict | None = None,
         root: str | Path | None = None, overwrite: bool = False, ref_min_score: float | None = None,
         ref_max_score: float | None = None, algorithm_name: str = "rlworks", description: str | None = None,
         ) -> Path:
    """Write ``episodes`` (dicts of ``observations`` (L + 1, ...), ``actions``, ``rewards``, ``terminations``,
    ``truncations`` (L, ...)) recorded on ``env`` (a registered id, with ``env_kwargs``) as the Minari dataset
    ``dataset_id``, through ``minari.create_dataset_from_buffers``, and return its folder.

    The dataset is built in a hidden temporary folder inside the datasets folder and moved into place
    only when complete; nothing in the datasets folder changes when this fails. An existing id is
    refused unless ``overwrite``. Reference scores are stored only when both are given (Minari keeps
    them only with a ``ref_max_score``)."""
    from minari import create_dataset_from_buffers
    from minari.data_collector.episode_buffer import EpisodeBuffer

    target = check_writable(dataset_id, root, overwrite)
    with staging(root) as tmp:
        buffers = [EpisodeBuffer(id=i, observations=np.asarray(ep["observations"]), actions=np.asarray(ep["actions"]),
                                 rewards=np.asarray(ep["rewards"], dtype=np.float64),
                                 terminations=np.asarray(ep["terminations"], dtype=bool),
                                 truncations=np.asarray(ep["truncations"], dtype=bool), infos={})
                   for i, ep in enumerate(episodes)]
        refs = {"ref_min_score": float(ref_min_score), "ref_max_score": float(ref_max_score)} \
            if ref_min_score is not None and ref_max_score is not None else {}
        made = gym.make(env, **(env_kwargs or {}))
        try:
            with _minari_root(tmp), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Minari warns about every unset optional field (email, permalink)
                create_dataset_from_buffers(
                    dataset_id, buffers, env=made, algorithm_name=algorithm_name, author=AUTHOR,
                    description=description or f"locally generated by rlworks on {env}", **refs)
        finally:
            made.close()
        install(tmp, [dataset_id], root, overwrite)
    return target
