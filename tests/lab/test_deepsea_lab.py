"""DeepSea in the lab and the visit-count view: the preset, its validation, the frames' visit
counts, and the story the view tells (the count bonus sweeps the sea, epsilon-greedy does not)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rlworks.envs.deepsea import DeepSea
from rlworks.lab.protocol import ProtocolError, parse
from rlworks.lab.session import LabSession
from rlworks.lab.worlds import DEEPSEA_LEFT, DEEPSEA_RIGHT, DIRECTIONS
from rlworks.tabular.planning import value_iteration


def send(session: LabSession, **msg) -> dict:
    """Validate a message as the server does and apply it; returns the new state."""
    return session.handle(parse(json.dumps(msg)))[0]


def deepsea(size: int, seed: int = 0, preset: str = "deepsea-ucb") -> LabSession:
    s = LabSession(seed=seed)
    send(s, type="preset", name=preset, size=size)
    send(s, type="visits", show=True)
    return s


def visits(session: LabSession) -> np.ndarray:
    n = session.world.rows
    return np.array(session.frame()["visits"]).reshape(n, n)


def test_deepsea_and_view_messages_round_trip():
    assert parse('{"type": "preset", "name": "deepsea", "size": 30}')["size"] == 30
    assert parse('{"type": "visits", "show": false}') == {"type": "visits", "show": False}
    msg = parse('{"type": "set", "bonus": "ucb", "bonus_c": 0, "q_init": -2}')
    assert msg == {"type": "set", "bonus": "ucb", "bonus_c": 0.0, "q_init": -2.0}


@pytest.mark.parametrize(
    "raw, words",
    [
        ('{"type": "preset", "name": "deepsea", "size": 31}', "size=31 is out of range: allowed 4..30"),
        ('{"type": "preset", "name": "deepsea", "size": 3}', "size=3 is out of range"),
        ('{"type": "preset", "name": "deepsea", "size": 9.5}', "size must be a whole number"),
        ('{"type": "visits"}', "missing field show"),
        ('{"type": "visits", "show": "yes"}', "show must be true or false"),
        ('{"type": "set", "bonus": "rnd"}', 'bonus="rnd" is not one of: none, ucb'),
        ('{"type": "set", "bonus_c": -0.1}', "bonus_c=-0.1 is out of range"),
        ('{"type": "set", "q_init": 1000}', "q_init=1000 is out of range"),
        ('{"type": "set", "q_init": "high"}', "q_init must be a number"),
    ],
)
def test_bad_deepsea_and_view_messages_are_refused(raw, words):
    with pytest.raises(ProtocolError) as err:
        parse(raw)
    assert words in str(err.value)


def test_deepsea_preset_is_a_grid_of_its_states():
    s = LabSession(seed=3)
    st = send(s, type="preset", name="deepsea", size=12)
    assert (st["rows"], st["cols"], st["actions"]) == (12, 12, 2) and st["preset"] == "deepsea"
    assert st["world"] == {"kind": "deepsea", "editable": False, "slip": False, "size": 12}
    assert s.learner.q.shape == (12 * 12 + 1, 2) and s.epoch > 0  # the cells plus the end state
    # cell (r, c) is state r * 12 + c: the start top-left, the treasure bottom-right, column > row out of reach
    assert st["layout"][0] == "S" + "x" * 11 and st["layout"][11] == "." * 11 + "T"
    assert all(row[r + 1 :] == "x" * (11 - r) for r, row in enumerate(st["layout"]))
    # the arrows follow the env's per-cell mapping: "right" is a different action in different cells
    dirs = np.array(st["action_dirs"]).reshape(144, 2)
    right, cells = DeepSea(12, mapping_seed=0).mapping.ravel(), np.arange(144)
    assert (dirs[cells, right] == DEEPSEA_RIGHT).all() and (dirs[cells, 1 - right] == DEEPSEA_LEFT).all()
    assert len(set(right)) == 2 and st["choices"]["directions"][DEEPSEA_RIGHT] == list(DIRECTIONS[DEEPSEA_RIGHT])
    # the preset's learner settings are applied and echoed
    assert st["settings"]["epsilon"] == 0.2 and st["settings"]["bonus"] == "none" and st["settings"]["gamma"] == 1.0
    assert s.learner.epsilon == 0.2 and s.learner.bonus == "none" and s.learner.gamma == 1.0
    frame = s.frame()
    assert len(frame["q"]) == 12 * 12 * 2 and frame["visits"] is None and frame["agent"] == 0
    assert st["choices"]["preset_sizes"]["deepsea"] == [4, 30, 10]
    assert send(s, type="preset", name="deepsea")["rows"] == 10  # the default size


def test_deepsea_overlay_map_rules_and_switching_back():
    s = LabSession()
    st = send(s, type="preset", name="deepsea-ucb", size=6)
    send(s, type="set", gamma=0.9)
    st = send(s, type="optimal", show=True)
    truth = value_iteration(DeepSea(6, mapping_seed=0, obs_type="index").model, 0.9)
    assert st["optimal"]["v"] == np.round(truth.v[:36], 4).tolist()
    assert st["optimal"]["v"][0] == pytest.approx(0.9**5 - 0.01 * sum(0.9**k for k in range(6)) / 6, abs=1e-4)
    # the colour scale is V* over the cells an episode can reach (the start's), not the out-of-reach ones
    assert st["scale"] == pytest.approx(truth.v[35]) and np.abs(truth.v[:36]).max() > 1.5
    with pytest.raises(ProtocolError, match="map is fixed"):
        send(s, type="edit", row=3, col=1)
    send(s, type="set", slip=0.3)  # kept as a setting; DeepSea stays deterministic
    assert s.world.model.deterministic and s.settings["slip"] == 0.3
    with pytest.raises(ProtocolError, match="fixed map: it takes no size"):
        send(s, type="preset", name="cliff", size=8)
    assert s.world.kind == "deepsea"  # a refused preset leaves the sea running
    st = send(s, type="preset", name="default")
    assert st["world"]["kind"] == "gridworld" and st["actions"] == 4 and st["layout"][0] == "S...."
    assert s.env.slip == 0.3 and s.learner.q.shape == (25, 4)
    st = send(s, type="map", layout=["S..", ".W.", "..G"])  # rewards of the current (grid) preset
    assert st["rows"] == 3 and st["preset"] == "custom"


def test_visit_counts_in_frames():
    s = deepsea(8, preset="deepsea")
    send(s, type="step", n=8 * 30)
    v = visits(s)
    assert v.sum() == s.learner.steps == 240 and v[0, 0] == 30  # every episode starts top-left
    assert (v[np.triu_indices(8, 1)] == 0).all()  # nothing out of reach is ever visited
    assert (v.sum(axis=1) == 30).all()  # one visit per row per episode: DeepSea falls a row per step
    send(s, type="visits", show=False)
    assert s.frame()["visits"] is None
    send(s, type="visits", show=True)
    assert visits(s).sum() == 240  # counted all along, shown on request
    send(s, type="reset")
    assert visits(s).sum() == 0 and s.learner.steps == 0


def test_bonus_and_optimism_settings_reach_the_learner():
    s = LabSession()
    send(s, type="step", n=50)
    send(s, type="set", bonus="ucb", bonus_c=0.3)
    assert s.learner.bonus == "ucb" and s.learner.effective_bonus_c == 0.3 and s.learner.steps == 50
    epoch = s.epoch
    st = send(s, type="set", q_init=0.5)  # a new initial value starts learning over
    assert st["epoch"] > epoch and s.learner.steps == 0
    open_cells = ~s.world.model.terminal
    assert (s.learner.q[open_cells] == 0.5).all() and (s.learner.q[~open_cells] == 0).all()
    send(s, type="step", n=20)
    send(s, type="reset")
    assert (s.learner.q[open_cells] == 0.5).all()  # Reset Q goes back to the initial value
    send(s, type="set", q_init=0.5, epsilon=0.1)  # unchanged q_init: Q is kept
    assert s.learner.epsilon == 0.1


@pytest.mark.parametrize("seed", range(5))
def test_count_bonus_sweeps_the_sea_where_epsilon_greedy_never_reaches_the_corner(seed):
    """Size 8, 100 episodes. Measured over learner seeds 0-9: the count bonus with optimistic Q
    has visited every reachable cell after 83-88 episodes; epsilon-greedy (0.2) reached the
    bottom-right cell in 1 of 10 seeds within 150 episodes (seed 8, episode 33, a lucky run while
    Q still tied), and in none of the 5 tested here. The bonus with Q starting at 0 fails too:
    the bonus needs optimism about the cells never seen (as Q = H in Jin et al. 2018)."""
    n, episodes = 8, 100
    reachable = np.tril(np.ones((n, n), dtype=bool))
    ucb, greedy = deepsea(n, seed, "deepsea-ucb"), deepsea(n, seed, "deepsea")
    # the bonus alone, Q starting at 0: a never-seen cell looks no better than a known one
    pessimist = deepsea(n, seed, "deepsea-ucb")
    send(pessimist, type="set", q_init=0.0)
    for _ in range(episodes):
        for s in (ucb, greedy, pessimist):
            send(s, type="step", n=n)  # one episode: every DeepSea episode lasts n steps
    assert ucb.learner.episodes == greedy.learner.episodes == pessimist.learner.episodes == episodes
    v_ucb, v_greedy, v_pessimist = visits(ucb), visits(greedy), visits(pessimist)
    assert (v_ucb[reachable] > 0).all(), v_ucb
    assert v_greedy[-1, -1] == 0, v_greedy
    assert (v_greedy[reachable] > 0).sum() < reachable.sum()
    assert v_pessimist[-1, -1] == 0, v_pessimist


@pytest.mark.parametrize("compiled", [True, False])
def test_counting_visits_changes_nothing_the_learner_does(compiled):
    """The lab counts visits without a bonus (``count_visits``): same Q, same stream, only counts."""
    from rlworks.tabular.learner import TabularLearner

    model = DeepSea(6, mapping_seed=2, obs_type="index").model
    kw = dict(alpha=0.3, gamma=0.9, epsilon=0.3, seed=5)
    plain, counted = TabularLearner(model, **kw), TabularLearner(model, count_visits=True, **kw)
    ra, _ = plain.run(episodes=40, compiled=compiled)
    rb, _ = counted.run(episodes=40, compiled=compiled)
    assert np.array_equal(plain.q, counted.q) and np.array_equal(ra, rb)
    assert plain.counts.sum() == 0 and counted.counts.sum() == counted.steps == 240


def test_a_preset_starts_the_tabs_random_stream_over():
    a, b = LabSession(seed=7), LabSession(seed=7)
    send(b, type="step", n=123)  # b ran on the default map first; choosing a preset forgets that
    for s in (a, b):
        send(s, type="preset", name="deepsea", size=6)
        send(s, type="step", n=300)
    assert np.array_equal(a.learner.q, b.learner.q) and np.array_equal(a.learner.counts, b.learner.counts)


def test_the_export_refuses_a_deepsea_preset_in_one_line(tmp_path, capsys):
    from rlworks.cli import main

    assert main(["lab", "--export", str(tmp_path / "sea.png"), "--preset", "deepsea"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "draws grid-world maps" in err[0] and not (tmp_path / "sea.png").exists()
