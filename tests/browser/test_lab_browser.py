"""The lab in a real browser (playwright driving Debian's chromium, headless).

The page exposes what it draws as data attributes on the grid (per-cell max-Q, greedy action,
layout) and the chart (recent episode lengths), so these tests read numbers, not pixels.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from rlworks.envs.gridworld import GridWorld, parse_layout
from rlworks.tabular.planning import value_iteration

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run"]
ROOT = Path(__file__).resolve().parents[2]
MOVES = [(-1, 0), (0, 1), (1, 0), (0, -1)]


@pytest.fixture(scope="module")
def lab_url():
    from rlworks.lab.server import bind, make_server

    sock = bind("127.0.0.1", 0)
    server = make_server(sock)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    server.should_exit = True
    thread.join(5)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (`make test` installs Debian's chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, lab_url):
    pg = browser.new_page(viewport={"width": 1366, "height": 900})
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(lab_url)
    pg.wait_for_function("() => document.querySelector('[data-testid=grid]').dataset.maxq !== undefined")
    yield pg
    pg.close()
    assert errors == [], f"console errors: {errors}"


def set_range(pg, testid: str, value) -> None:
    """Move a slider as a user's drag does: set the value, fire `input`."""
    pg.eval_on_selector(
        f"[data-testid={testid}]",
        "(el, v) => { el.value = v; el.dispatchEvent(new Event('input', {bubbles: true})); }",
        str(value),
    )


def speed(pg, name: str) -> None:
    speeds = ["1", "3", "10", "30", "100", "1k", "10k", "max"]
    set_range(pg, "speed", speeds.index(name))


def grid_data(pg) -> dict:
    return pg.eval_on_selector("[data-testid=grid]", "el => ({...el.dataset})")


def episode(pg) -> int:
    return int(pg.get_by_test_id("episode").get_attribute("data-value") or 0)


def greedy_path(data: dict) -> list[tuple[int, int, int]]:
    """(row, col, action) along the page's greedy arrows from the start, until the goal."""
    layout = data["layout"].split("/")
    cols = len(layout[0])
    greedy = [int(a) for a in data["greedy"].split(",")]
    r, c = next((i, row.index("S")) for i, row in enumerate(layout) if "S" in row)
    path = []
    for _ in range(4 * len(greedy)):
        if layout[r][c] == "G":
            return path
        a = greedy[r * cols + c]
        path.append((r, c, a))
        if a < 0:
            return path
        nr, nc = r + MOVES[a][0], c + MOVES[a][1]
        if 0 <= nr < len(layout) and 0 <= nc < cols and layout[nr][nc] != "W":
            r, c = nr, nc
    return path


def path_is_optimal(data: dict) -> bool:
    layout = data["layout"].split("/")
    cols = len(layout[0])
    optimal = value_iteration(GridWorld(layout), 0.95).optimal_actions()
    path = greedy_path(data)
    ends_at_goal = bool(path) and all(a >= 0 for _, _, a in path) and len(path) < 4 * len(layout) * cols
    return ends_at_goal and all(optimal[r * cols + c, a] for r, c, a in path)


def wait_until(pg, predicate, timeout: float = 8.0, every: float = 0.1) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        pg.wait_for_timeout(every * 1000)
    return predicate()


def test_loads_floods_backward_and_learns_the_optimal_path(page):
    # cells warm strictly from the goal outward; record the frame each watched cell first turns warm
    page.evaluate(
        """() => {
        const grid = document.querySelector('[data-testid=grid]');
        window.firstWarm = {}; window.nFrames = 0;
        new MutationObserver(() => {
          window.nFrames++;
          grid.dataset.maxq.split(',').forEach((v, s) => {
            if (Number(v) > 0 && !(s in window.firstWarm)) window.firstWarm[s] = window.nFrames;
          });
        }).observe(grid, {attributes: true, attributeFilter: ['data-maxq']});
      }"""
    )
    speed(page, "1k")
    start, next_to_goal = 0, 19  # the default 5x5: goal at (4, 4), its only open neighbour is (3, 4)
    assert wait_until(page, lambda: page.evaluate(f"() => {start} in window.firstWarm"), timeout=15)
    warm = page.evaluate("() => window.firstWarm")
    assert warm[str(next_to_goal)] < warm[str(start)], warm
    assert episode(page) > 0
    speed(page, "max")
    e0 = episode(page)
    page.wait_for_timeout(1000)
    assert episode(page) > e0 + 1000  # thousands of episodes a second at max
    assert wait_until(page, lambda: path_is_optimal(grid_data(page)), timeout=10)
    # the picture for the README: learned values with value iteration's overlay, one cell hovered
    page.get_by_test_id("show-optimal").check()
    speed(page, "30")
    page.wait_for_timeout(400)
    box = page.get_by_test_id("grid").bounding_box()
    cell = box["width"] / 5
    page.mouse.move(box["x"] + 2.5 * cell, box["y"] + 2.5 * cell)
    page.wait_for_timeout(300)
    assert "Q(↑ up)" in page.get_by_test_id("tooltip").text_content()
    out = ROOT / "test-artifacts" / "lab.png"
    out.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(out), full_page=True)
    assert out.stat().st_size > 10_000
    if os.environ.get("RLWORKS_UPDATE_DOCS") == "1":  # refresh the README's picture on request only
        shutil.copy(out, ROOT / "docs" / "lab.png")


def test_greedy_with_argmax_ties_gets_stuck_at_epsilon_zero_and_recovers(page):
    page.get_by_test_id("tie-break").select_option("first")
    set_range(page, "epsilon", 0)
    page.get_by_test_id("reset").click()
    speed(page, "10k")

    def lengths():
        raw = page.get_by_test_id("chart").get_attribute("data-lengths") or ""
        return [int(x) for x in raw.split(",") if x]

    assert wait_until(page, lambda: len(lengths()) >= 20, timeout=8)
    cap = int(page.get_by_test_id("chart").get_attribute("data-cap"))
    assert cap == 100 and all(n == cap for n in lengths()), lengths()  # every episode hits the step cap
    assert set(grid_data(page)["maxq"].split(",")) == {"0.0000"}  # nothing learned, ever
    set_range(page, "epsilon", 0.5)
    assert wait_until(page, lambda: any(n < cap for n in lengths()), timeout=10)  # it reaches the goal again
    assert float(page.locator("#epsilon-out").text_content()) == 0.5


def test_editing_a_wall_changes_the_learned_path(page):
    speed(page, "max")
    assert wait_until(page, lambda: path_is_optimal(grid_data(page)), timeout=10)
    before = grid_data(page)
    path = greedy_path(before)
    layout = before["layout"].split("/")
    # block the first cell on the learned path whose loss still leaves the goal reachable
    for r, c, _ in path[1:]:
        trial = [list(row) for row in layout]
        trial[r][c] = "W"
        try:
            parse_layout(["".join(row) for row in trial])
            break
        except Exception:
            continue
    else:
        pytest.fail(f"no cell on {path} can become a wall")
    box = page.get_by_test_id("grid").bounding_box()
    cell = box["width"] / len(layout[0])
    page.mouse.click(box["x"] + (c + 0.5) * cell, box["y"] + (r + 0.5) * cell)
    page.wait_for_function(
        "(rc) => document.querySelector('[data-testid=grid]').dataset.layout.split('/')[rc[0]][rc[1]] === 'W'",
        arg=[r, c],
    )
    assert wait_until(page, lambda: path_is_optimal(grid_data(page)), timeout=15)
    after = greedy_path(grid_data(page))
    assert (r, c) not in [(pr, pc) for pr, pc, _ in after] and after != path
    # clicking the start is refused with the error banner; the page keeps running
    page.mouse.click(box["x"] + 0.5 * cell, box["y"] + 0.5 * cell)
    banner = page.get_by_test_id("error")
    banner.wait_for(state="visible")
    assert "start" in banner.text_content()
    e0 = episode(page)
    page.wait_for_timeout(300)
    assert episode(page) > e0


def test_presets_sizes_and_algorithms(page):
    page.get_by_test_id("preset").select_option("cliff")
    page.wait_for_function("() => document.querySelector('[data-testid=grid]').dataset.rows === '4'")
    page.get_by_test_id("algorithm").select_option("dyna-q")
    page.get_by_test_id("planning").wait_for(state="visible")  # shown once the server confirms
    page.get_by_test_id("map-rows").select_option("12")
    page.get_by_test_id("map-cols").select_option("12")
    page.wait_for_function("() => document.querySelector('[data-testid=grid]').dataset.cols === '12'")
    speed(page, "max")
    assert wait_until(page, lambda: episode(page) > 50, timeout=8)
    maxq = np.array([float(v) for v in grid_data(page)["maxq"].split(",")])
    assert maxq.shape == (144,) and maxq.max() > 0
    if (ROOT / "test-artifacts").is_dir():
        page.screenshot(path=str(ROOT / "test-artifacts" / "lab-12x12.png"))
    # the export button downloads the flood rendered by the server
    page.get_by_test_id("export-episodes").fill("10")
    page.get_by_test_id("export-format").select_option("png")
    with page.expect_download(timeout=20_000) as download:
        page.get_by_test_id("export").click()
    with open(download.value.path(), "rb") as fh:
        assert fh.read(4) == b"\x89PNG"
