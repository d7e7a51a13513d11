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


UNVISITED_RGB = (243, 244, 246)  # lab.js UNVISITED: cells never visited and cells out of reach


def cell_pixels(pg, n: int) -> np.ndarray:
    """(n, n, 3): the canvas colour of each cell, sampled left of the arrow and above the text."""
    rgb = pg.evaluate(
        """(n) => {
        const cv = document.getElementById('grid-canvas'), ctx = cv.getContext('2d');
        const cell = cv.width / n, out = [];
        for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) {
          const d = ctx.getImageData(Math.floor((c + 0.1) * cell), Math.floor((r + 0.62) * cell), 1, 1).data;
          out.push([d[0], d[1], d[2]]);
        }
        return out;
      }""",
        n,
    )
    return np.array(rgb).reshape(n, n, 3)


def pause(pg) -> None:
    pg.get_by_test_id("pause").click()
    pg.wait_for_function("() => !document.querySelector('[data-testid=run]').disabled")  # the server paused
    pg.wait_for_timeout(200)  # the last frame in flight


def open_sea(pg, preset: str, size: int) -> None:
    """Paused, the DeepSea preset at this size, visit colours on."""
    pause(pg)
    pg.get_by_test_id("preset").select_option(preset)
    pg.get_by_test_id("sea-size").wait_for(state="visible")
    pg.get_by_test_id("sea-size").select_option(str(size))
    pg.wait_for_function(f"() => document.querySelector('[data-testid=grid]').dataset.rows === '{size}'")
    pg.get_by_test_id("show-visits").check()
    pg.wait_for_function("() => document.querySelector('[data-testid=grid]').dataset.view === 'visits'")


def run_episodes(pg, episodes: int) -> None:
    speed(pg, "1k")
    pg.get_by_test_id("run").click()
    assert wait_until(pg, lambda: episode(pg) >= episodes, timeout=20)
    pause(pg)
    e = episode(pg)
    pg.wait_for_timeout(300)
    assert episode(pg) == e  # paused: what we read next stays put


def test_deepsea_visit_count_view_colours_the_cells_the_agent_visits(page):
    n = 8
    open_sea(page, "deepsea-ucb", n)
    assert page.get_by_test_id("visit-scale").is_visible() and page.get_by_test_id("map-rows").is_hidden()
    assert page.get_by_test_id("bonus").input_value() == "ucb" and page.get_by_test_id("q-init").input_value() == "1"
    assert (cell_pixels(page, n) == UNVISITED_RGB).all()  # nothing visited yet: every cell grey
    page.get_by_test_id("step").click()  # one step, from the start
    page.wait_for_function("() => document.querySelector('[data-testid=grid]').dataset.visits.startsWith('1,')")
    page.wait_for_timeout(100)
    first = cell_pixels(page, n)
    assert (first[0, 0] != UNVISITED_RGB).any() and (first.reshape(-1, 3)[1:] == UNVISITED_RGB).all()
    run_episodes(page, 100)  # the count bonus sweeps a size-8 sea in under 90 episodes
    data = grid_data(page)
    visits = np.array([int(v) for v in data["visits"].split(",")]).reshape(n, n)
    reachable = np.tril(np.ones((n, n), dtype=bool))
    assert (visits[reachable] > 0).all() and (visits[~reachable] == 0).all(), visits
    px = cell_pixels(page, n)
    assert all((px[r, c] != UNVISITED_RGB).any() for r, c in zip(*np.nonzero(reachable))), px
    assert (px[~reachable] == UNVISITED_RGB).all()
    # log scale, YlGnBu: the start (visited every episode) is darker than the least-visited cell
    lum = px.sum(axis=2)
    r, c = np.unravel_index(np.where(reachable, visits, visits.max() + 1).argmin(), visits.shape)
    assert lum[0, 0] < lum[r, c] - 100, (lum[0, 0], lum[r, c])
    # hover text carries the count; switching the view off goes back to max-Q colours
    box = page.get_by_test_id("grid").bounding_box()
    cell = box["width"] / n
    page.mouse.move(box["x"] + 0.5 * cell, box["y"] + (n - 0.5) * cell)
    page.wait_for_timeout(200)
    assert f"visits N(s) = {visits[n - 1, 0]:,}" in page.get_by_test_id("tooltip").text_content()
    page.get_by_test_id("show-visits").uncheck()
    page.wait_for_function("() => document.querySelector('[data-testid=grid]').dataset.view === 'q'")
    page.wait_for_timeout(200)
    assert (cell_pixels(page, n)[0, 0] != px[0, 0]).any()
    assert page.get_by_test_id("visit-scale").is_hidden()


def test_deepsea_epsilon_greedy_against_the_count_bonus(browser, lab_url):
    """The lab's DeepSea story, two tabs side by side: epsilon-greedy stays near the left edge, the
    count bonus with optimistic Q sweeps the sea. Saves the picture docs/lab.md shows."""
    n, episodes, shots = 10, 160, []
    for preset in ("deepsea", "deepsea-ucb"):
        pg = browser.new_page(viewport={"width": 1366, "height": 900})
        try:
            pg.goto(lab_url)
            pg.wait_for_function("() => document.querySelector('[data-testid=grid]').dataset.maxq !== undefined")
            open_sea(pg, preset, n)
            run_episodes(pg, episodes)
            visits = np.array([int(v) for v in grid_data(pg)["visits"].split(",")]).reshape(n, n)
            box = pg.get_by_test_id("grid").bounding_box()
            cell = box["width"] / n
            pg.mouse.move(box["x"] + 3.5 * cell, box["y"] + 6.5 * cell)
            pg.wait_for_timeout(200)
            shots.append((preset, visits, pg.locator(".stage").screenshot()))
        finally:
            pg.close()
    (_, greedy, _), (_, ucb, _) = shots
    reachable = np.tril(np.ones((n, n), dtype=bool))
    assert greedy[-1, -1] == 0 and (greedy[reachable] == 0).any()
    assert (ucb[reachable] > 0).all()
    out = ROOT / "test-artifacts" / "lab-deepsea.png"
    out.parent.mkdir(exist_ok=True)
    _side_by_side(out, [(s[2], t) for s, t in zip(shots, (
        f"ε-greedy (ε = 0.2): {int((greedy[reachable] > 0).sum())} of {int(reachable.sum())} cells visited",
        f"count bonus + optimistic Q: all {int(reachable.sum())} cells visited",
    ))])  # fmt: skip
    assert out.stat().st_size > 10_000
    if os.environ.get("RLWORKS_UPDATE_DOCS") == "1":
        shutil.copy(out, ROOT / "docs" / "lab-deepsea.png")


def _side_by_side(path: Path, images: list[tuple[bytes, str]]) -> None:
    import io

    import imageio.v3 as iio
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    pics = [iio.imread(io.BytesIO(png))[:, :, :3] for png, _ in images]
    h, w = max(p.shape[0] for p in pics), sum(p.shape[1] for p in pics)
    fig = Figure(figsize=(w / 100, h / 100 + 0.4), dpi=100)
    for i, (pic, (_, title)) in enumerate(zip(pics, images)):
        ax = fig.add_axes((i / len(pics), 0, 1 / len(pics), h / (h + 40)))
        ax.imshow(pic)
        ax.set_axis_off()
        ax.set_title(title, fontsize=13, color="#1f2937")
    FigureCanvasAgg(fig).print_png(str(path))


def test_search_view_from_a_floor_cell(page):
    """In search mode a click asks the server for a pUCT search from that cell; the panel shows one row per
    action whose visits add up to the simulations chosen, and the map is not edited."""
    pause(page)
    layout = grid_data(page)["layout"]
    page.get_by_test_id("click-mode").select_option("search")
    page.get_by_test_id("search-sims").select_option("64")
    box = page.get_by_test_id("grid").bounding_box()
    cell = box["width"] / 5
    page.mouse.click(box["x"] + 4.5 * cell, box["y"] + 3.5 * cell)  # row 3, col 4: floor, above the goal
    page.get_by_test_id("search-panel").wait_for(state="visible")
    rows = page.get_by_test_id("search-row")
    assert rows.count() == 4
    visits = [int(rows.nth(a).get_attribute("data-visits")) for a in range(4)]
    assert sum(visits) == 64
    chosen = int(page.get_by_test_id("search-panel").get_attribute("data-action"))
    assert "chosen" in (rows.nth(chosen).get_attribute("class") or "") and visits[chosen] == max(visits)
    assert "64 simulations" in page.get_by_test_id("search-panel").text_content()
    data = grid_data(page)
    assert data["searched"] == "3,4" and data["layout"] == layout  # searched, not edited
    in_sight = "() => { const r = document.getElementById('search-panel').getBoundingClientRect();" \
               " return r.top >= 0 && r.bottom <= window.innerHeight + 1; }"
    assert page.evaluate(in_sight)  # scrolled to, even below a large grid
    if (ROOT / "test-artifacts").is_dir():
        page.screenshot(path=str(ROOT / "test-artifacts" / "lab-search.png"))
    box = page.get_by_test_id("grid").bounding_box()  # the page may have scrolled
    # a wall is refused in the red banner; back in edit mode a click edits again
    page.mouse.click(box["x"] + 1.5 * cell, box["y"] + 1.5 * cell)
    banner = page.get_by_test_id("error")
    banner.wait_for(state="visible")
    assert "is a wall" in banner.text_content()
    page.get_by_test_id("click-mode").select_option("edit")
    box = page.get_by_test_id("grid").bounding_box()  # the banner moved the grid down
    page.mouse.click(box["x"] + 2.5 * cell, box["y"] + 0.5 * cell)
    page.wait_for_function("() => document.querySelector('[data-testid=grid]').dataset.layout.startsWith('S.W')")
