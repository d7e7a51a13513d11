"""The labelling page in a real browser (playwright driving Debian's chromium, headless): keys
1, t, s, 2 and a button click label pairs, the progress text follows, and OUT holds TRL rows."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run"]


@pytest.fixture
def label_lab(tmp_path):
    from rlworks.lab.labelling import LabelStore
    from rlworks.lab.server import bind, make_server

    pairs = tmp_path / "pairs.jsonl"
    rows = [{"id": f"pair-{i}", "prompt": f"Say something {i} <b>bold</b>", "a": f"alpha {i}", "b": f"beta {i}"}
            for i in range(5)]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    sock = bind("127.0.0.1", 0)
    server = make_server(sock, label_store=LabelStore(pairs))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/label", tmp_path / "pairs.labels.jsonl"
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


def test_keys_label_pairs_and_progress_follows(browser, label_lab):
    url, out = label_lab
    pg = browser.new_page(viewport={"width": 1280, "height": 860})
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(url)
    pg.wait_for_selector("[data-testid=pair][data-id=pair-0]")
    progress = pg.locator("[data-testid=progress]")
    assert progress.inner_text() == "0 of 5 labelled, 0 skipped"
    # completions are text, never HTML
    assert pg.locator("[data-testid=prompt]").inner_text() == "Say something 0 <b>bold</b>"

    seen = {}  # id -> (left, right) as the page showed them
    expected_progress = ["1 of 5 labelled, 0 skipped", "2 of 5 labelled, 0 skipped",
                         "2 of 5 labelled, 1 skipped", "3 of 5 labelled, 1 skipped"]
    for i, (key, text) in enumerate(zip("1ts2", expected_progress)):
        pid = f"pair-{i}"
        seen[pid] = (pg.locator("[data-testid=left]").inner_text(), pg.locator("[data-testid=right]").inner_text())
        pg.keyboard.press(key)
        pg.wait_for_selector(f"[data-testid=pair][data-id=pair-{i + 1}]")
        assert progress.inner_text() == text

    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["pair-0", "pair-1", "pair-3"]
    assert (rows[0]["chosen"], rows[0]["rejected"], rows[0]["tie"]) == (*seen["pair-0"], False)
    assert (rows[1]["chosen"], rows[1]["rejected"], rows[1]["tie"]) == (*seen["pair-1"], True)
    assert (rows[2]["chosen"], rows[2]["rejected"], rows[2]["tie"]) == (seen["pair-3"][1], seen["pair-3"][0], False)
    for r in rows:
        i = r["id"].split("-")[1]
        assert r["shown"] == ("ab" if seen[r["id"]][0] == f"alpha {i}" else "ba")
    assert {r["shown"] for r in rows} == {"ab", "ba"}  # these ids cover both orders
    skips = [json.loads(line) for line in Path(str(out) + ".skips").read_text().splitlines()]
    assert [s["id"] for s in skips] == ["pair-2"]

    # the last pair by button; then the page says all are done
    pg.click("[data-testid=choose-1]")
    pg.wait_for_selector("[data-testid=done]:not([hidden])")
    assert progress.inner_text() == "4 of 5 labelled, 1 skipped"
    assert "All pairs are done" in pg.locator("[data-testid=done]").inner_text()
    assert len(out.read_text().splitlines()) == 4
    pg.close()
    assert errors == [], f"console errors: {errors}"
