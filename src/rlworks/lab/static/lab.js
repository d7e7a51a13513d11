// rlworks lab page: renders the frames the Python engine streams and sends commands back.
// No learning happens here; the page only draws and talks over one WebSocket.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const { fmt, line } = window.rlworksDraw; // chart.js, loaded first
  const SPEED_LABEL = { "1": "1 step/s", "3": "3 steps/s", "10": "10 steps/s", "30": "30 steps/s",
    "100": "100 steps/s", "1k": "1,000 steps/s", "10k": "10,000 steps/s", max: "as fast as it goes" };
  // ColorBrewer RdBu reversed: negative blue, zero near-white, positive red (colour-blind safe)
  const rgb = (h) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16));
  const RDBU = ["#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7", "#fddbc7", "#f4a582", "#d6604d", "#b2182b"]
    .map(rgb);
  // ColorBrewer YlGnBu for visit counts (sequential, colour-blind safe); never-visited cells stay grey
  const YLGNBU = ["#ffffd9", "#edf8b1", "#c7e9b4", "#7fcdbb", "#41b6c4", "#1d91c0", "#225ea8", "#253494", "#081d58"]
    .map(rgb);
  const UNVISITED = "#f3f4f6";
  const HISTORY = 300;

  let ws = null;
  let state = null;   // last "state" message: settings, layout, choices, optimal overlay
  let frame = null;   // last "frame" message: Q, agent, counters
  let hist = { epoch: -1, returns: [], lengths: [], last: 0 };
  let frameTimes = [];
  let hover = null;   // {r, c} under the mouse
  let cell = 64;
  let drawQueued = false;
  let errorTimer = null;
  let shownKind = "gridworld";
  let searched = null; // last "search" message: shown in the panel, its cell outlined on the grid

  // ------------------------------------------------------------------ socket
  function connect() {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    ws = new WebSocket(`${proto}://${location.host}/ws`);
    ws.onopen = () => setConn("live", "connected");
    ws.onclose = () => { setConn("down", "disconnected: retrying…"); setTimeout(connect, 1000); };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (msg.type === "state") onState(msg);
      else if (msg.type === "frame") onFrame(msg);
      else if (msg.type === "error") showError(msg.message);
      else if (msg.type === "export") onExport(msg);
      else if (msg.type === "search") onSearch(msg);
    };
  }
  function send(obj) { if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj)); }
  function setConn(cls, text) { const el = $("conn"); el.className = `conn ${cls}`; el.textContent = text; }

  function showError(text) {
    const box = $("error");
    if (text.startsWith("export") || text.startsWith("an export")) $("export").disabled = false;
    $("error-text").textContent = text;
    box.hidden = false;
    box.dataset.count = String(Number(box.dataset.count || 0) + 1);
    clearTimeout(errorTimer);
    errorTimer = setTimeout(() => { box.hidden = true; }, 12000);
  }

  // ------------------------------------------------------------------ messages
  function onState(st) {
    const first = state === null;
    state = st;
    if (first) fillChoices(st.choices);
    if (st.epoch !== hist.epoch) hist = { epoch: st.epoch, returns: [], lengths: [], last: 0 };
    syncControls(st);
    document.body.classList.toggle("optimal", !!st.show_optimal);
    document.body.classList.toggle("deepsea", st.world.kind === "deepsea");
    if (st.optimal && st.optimal.error) showError(`value iteration: ${st.optimal.error}`);
    if (searched && searched.layout !== st.layout.join("/")) clearSearch(); // a new map: the search is stale
    sizeCanvas();
    queueDraw();
  }

  function onFrame(f) {
    if (f.epoch !== hist.epoch) hist = { epoch: f.epoch, returns: [], lengths: [], last: 0 };
    for (let i = 0; i < f.returns.length; i++) { hist.returns.push(f.returns[i]); hist.lengths.push(f.lengths[i]); }
    if (hist.returns.length > HISTORY) {
      hist.returns.splice(0, hist.returns.length - HISTORY);
      hist.lengths.splice(0, hist.lengths.length - HISTORY);
    }
    frame = f;
    const now = performance.now();
    frameTimes.push(now);
    while (frameTimes.length && frameTimes[0] < now - 1000) frameTimes.shift();
    queueDraw();
  }

  // the search from one cell: a row per action (prior, visits with a bar, Q), the chosen one highlighted
  function onSearch(res) {
    searched = { ...res, layout: state.layout.join("/") };
    const most = Math.max(1, ...res.visits);
    $("search-rows").innerHTML = res.visits.map((n, a) => {
      const q = res.q[a] === null ? `<span class="muted">unvisited</span>` : res.q[a].toFixed(3);
      const bar = `<span class="vbar"><i style="width:${(100 * n / most).toFixed(1)}%"></i></span>`;
      return `<tr data-testid="search-row" data-action="${a}" data-visits="${n}"${a === res.action ? ' class="chosen"' : ""}>` +
        `<td class="act">${res.actions[a]}</td><td>${res.prior[a].toFixed(3)}</td><td>${bar}${n}</td><td>${q}</td></tr>`;
    }).join("");
    $("search-title").textContent = `Search from row ${res.row}, col ${res.col}`;
    $("search-summary").textContent = `${res.simulations} simulations · chosen ${res.actions[res.action]} (most ` +
      `visits) · root value ${res.root_value.toFixed(3)} · ε ${res.epsilon.toFixed(2)}, γ ${res.gamma.toFixed(2)}`;
    $("search-note").textContent = res.note || "";
    $("search-note").hidden = !res.note;
    const panel = $("search-panel");
    panel.dataset.action = String(res.action);
    panel.dataset.simulations = String(res.simulations);
    panel.hidden = false;
    panel.scrollIntoView({block: "nearest"});  // below a large grid it would open out of sight
    queueDraw();
  }

  function clearSearch() {
    searched = null;
    $("search-panel").hidden = true;
    queueDraw();
  }

  function onExport(msg) {
    $("export").disabled = false;
    $("export-note").textContent = `Exported ${(msg.bytes / 1024).toFixed(0)} KB.`;
    const a = document.createElement("a");
    a.href = msg.url;
    a.download = "";
    document.body.appendChild(a);
    a.click();
    a.remove();
  }

  // ------------------------------------------------------------------ controls
  function fillChoices(ch) {
    const preset = $("preset");
    for (const [k, title] of Object.entries(ch.presets)) preset.add(new Option(title, k));
    preset.add(new Option("custom map", "custom"));
    for (const id of ["rows", "cols"]) for (let n = 2; n <= ch.max_side; n++) $(id).add(new Option(String(n), String(n)));
    const sizes = Object.values(ch.preset_sizes)[0];
    if (sizes) for (let n = sizes[0]; n <= sizes[1]; n++) $("sea-size").add(new Option(String(n), String(n)));
    $("speed").max = String(ch.speeds.length - 1);
  }

  function setIfIdle(el, value) {
    // don't fight the user's drag: the server echoes what it accepted
    if (document.activeElement !== el || el.type !== "range") el.value = String(value);
  }

  function syncControls(st) {
    const s = st.settings;
    setIfIdle($("epsilon"), s.epsilon); $("epsilon-out").textContent = s.epsilon.toFixed(2);
    setIfIdle($("alpha"), s.alpha); $("alpha-out").textContent = s.alpha.toFixed(2);
    setIfIdle($("gamma"), s.gamma); $("gamma-out").textContent = s.gamma.toFixed(2);
    setIfIdle($("slip"), s.slip); $("slip-out").textContent = s.slip.toFixed(2);
    setIfIdle($("planning"), s.planning_steps); $("planning-out").textContent = String(s.planning_steps);
    const si = st.choices.speeds.indexOf(s.speed);
    setIfIdle($("speed"), si); $("speed-out").textContent = SPEED_LABEL[s.speed] || s.speed;
    $("algorithm").value = s.algorithm;
    $("planning-row").hidden = s.algorithm !== "dyna-q";
    $("tie-break").value = s.tie_break;
    $("bonus").value = s.bonus;
    $("bonus-c-row").hidden = s.bonus !== "ucb";
    setIfIdle($("bonus-c"), s.bonus_c); $("bonus-c-out").textContent = s.bonus_c.toFixed(2);
    if (document.activeElement !== $("q-init")) $("q-init").value = String(s.q_init);
    if (document.activeElement !== $("cap")) $("cap").value = String(s.max_episode_steps);
    $("preset").value = st.preset;
    $("preset-note").textContent = st.preset_note;
    $("rows").value = String(st.rows); $("cols").value = String(st.cols);
    const w = st.world;
    $("map-size-row").hidden = !w.editable;
    $("sea-size-row").hidden = w.size === null;
    if (w.size !== null) $("sea-size").value = String(w.size);
    $("slip-row").hidden = !w.slip;
    if (w.kind !== shownKind) { // the export draws grid-world maps only (checked once per world kind,
      shownKind = w.kind;      // so that a state message does not undo "Rendering…")
      $("export").disabled = !w.editable;
      $("export-note").textContent = w.editable
        ? "Trains a fresh agent with these settings and renders the flood." : "The export draws grid-world maps only.";
    }
    setHint();
    $("show-optimal").checked = !!st.show_optimal;
    $("show-visits").checked = !!st.show_visits;
    $("scale-q").hidden = !!st.show_visits;
    $("scale-visits").hidden = !st.show_visits;
    setRunning(st.running);
    const sc = st.scale;
    $("scale-lo").textContent = `−${fmt(sc)}`; $("scale-hi").textContent = `+${fmt(sc)}`;
  }

  function setHint() {
    const w = state.world;
    const searching = $("click-mode").value === "search";
    $("search-sims-label").hidden = !searching;
    if (searching) {
      $("hint").textContent = "Click a floor cell (or arrow keys + Enter) to search from it: pUCT, as in MuZero, over " +
        "the world's true moves, with the learner's ε-greedy policy as the prior and its max-Q at the leaves.";
    } else {
      $("hint").textContent = w.editable
        ? "Click a cell (or arrow keys + Enter) to cycle floor → wall → goal → start. Hover a cell for its Q-values."
        : "This map is fixed: every step goes one row down and one column left or right (which action is which " +
          "differs per cell). Hover a cell for its Q-values and visit count.";
    }
  }

  function setRunning(running) { $("run").disabled = running; $("pause").disabled = !running; }

  function bindControls() {
    $("run").onclick = () => send({ type: "run" });
    $("pause").onclick = () => send({ type: "pause" });
    $("step").onclick = () => send({ type: "step" });
    $("reset").onclick = () => send({ type: "reset" });
    const slider = (id, field, parse, out) => {
      $(id).addEventListener("input", () => {
        const v = parse($(id).value);
        if (out) $(`${id}-out`).textContent = out(v);
        send({ type: "set", [field]: v });
      });
    };
    slider("epsilon", "epsilon", Number, (v) => v.toFixed(2));
    slider("alpha", "alpha", Number, (v) => v.toFixed(2));
    slider("gamma", "gamma", Number, (v) => v.toFixed(2));
    slider("slip", "slip", Number, (v) => v.toFixed(2));
    slider("planning", "planning_steps", (v) => parseInt(v, 10), String);
    slider("bonus-c", "bonus_c", Number, (v) => v.toFixed(2));
    $("bonus").onchange = () => send({ type: "set", bonus: $("bonus").value });
    $("q-init").onchange = () => {
      const v = Number($("q-init").value);
      if ($("q-init").value !== "" && Number.isFinite(v)) send({ type: "set", q_init: v });
    };
    $("sea-size").onchange = () => send({ type: "preset", name: $("preset").value, size: Number($("sea-size").value) });
    $("show-visits").onchange = () => send({ type: "visits", show: $("show-visits").checked });
    $("speed").addEventListener("input", () => {
      const key = state ? state.choices.speeds[Number($("speed").value)] : "30";
      $("speed-out").textContent = SPEED_LABEL[key] || key;
      send({ type: "set", speed: key });
    });
    $("algorithm").onchange = () => send({ type: "set", algorithm: $("algorithm").value });
    $("tie-break").onchange = () => send({ type: "set", tie_break: $("tie-break").value });
    $("cap").onchange = () => send({ type: "set", max_episode_steps: Number($("cap").value) });
    $("preset").onchange = () => { if ($("preset").value !== "custom") send({ type: "preset", name: $("preset").value }); };
    const resize = () => send({ type: "size", rows: Number($("rows").value), cols: Number($("cols").value) });
    $("rows").onchange = resize;
    $("cols").onchange = resize;
    $("show-optimal").onchange = () => send({ type: "optimal", show: $("show-optimal").checked });
    $("export").onclick = () => {
      $("export").disabled = true;
      $("export-note").textContent = "Rendering…";
      send({ type: "export", episodes: Number($("export-episodes").value), format: $("export-format").value });
      setTimeout(() => { $("export").disabled = false; }, 60000); // a 16x16 GIF takes ~10 s
    };
    $("error-close").onclick = () => { $("error").hidden = true; };
    $("click-mode").onchange = () => { if (state) setHint(); };
    $("search-close").onclick = clearSearch;
    const canvas = $("grid-canvas");
    canvas.addEventListener("mousemove", (ev) => { hover = cellAt(ev); queueDraw(); });
    canvas.addEventListener("mouseleave", () => { hover = null; $("tip").hidden = true; queueDraw(); });
    // a click edits the cell or searches from it, as "click a cell to" says
    const clickCell = (h) => {
      if (!h) return;
      if ($("click-mode").value === "search") {
        send({ type: "search", row: h.r, col: h.c, simulations: Number($("search-sims").value) });
      } else if (state.world.editable) send({ type: "edit", row: h.r, col: h.c });
    };
    canvas.addEventListener("click", (ev) => clickCell(cellAt(ev)));
    // keyboard: arrows move the highlighted cell, Enter or Space clicks it
    canvas.addEventListener("keydown", (ev) => {
      if (!state) return;
      const d = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] }[ev.key];
      const h = hover || { r: 0, c: 0 };
      if (d) hover = { r: Math.max(0, Math.min(state.rows - 1, h.r + d[0])), c: Math.max(0, Math.min(state.cols - 1, h.c + d[1])) };
      else if (ev.key === "Enter" || ev.key === " ") clickCell(h);
      else return;
      ev.preventDefault();
      queueDraw();
    });
    canvas.addEventListener("blur", () => { hover = null; $("tip").hidden = true; });
    window.addEventListener("resize", () => { sizeCanvas(); queueDraw(); });
  }

  function cellAt(ev) {
    if (!state) return null;
    const rect = $("grid-canvas").getBoundingClientRect();
    const c = Math.floor((ev.clientX - rect.left) / cell);
    const r = Math.floor((ev.clientY - rect.top) / cell);
    return r >= 0 && r < state.rows && c >= 0 && c < state.cols ? { r, c } : null;
  }

  // ------------------------------------------------------------------ drawing
  function ramp(stops, u) { // u in [0, 1] along the colour stops
    const p = Math.max(0, Math.min(1, u)) * (stops.length - 1);
    const i = Math.min(stops.length - 2, Math.floor(p));
    const f = p - i;
    const c = stops[i].map((x, k) => Math.round(x + (stops[i + 1][k] - x) * f));
    return `rgb(${c[0]},${c[1]},${c[2]})`;
  }
  function colour(t) { return ramp(RDBU, (t + 1) / 2); }
  // log scale: one visit is the palest colour, the most-visited cell the darkest
  function visitShade(n, most) { return n > 0 ? Math.log1p(n) / Math.log1p(Math.max(most, 1)) : 0; }
  function compact(n) {
    if (n < 1000) return String(n);
    const [d, s] = n < 1e6 ? [1e3, "k"] : n < 1e9 ? [1e6, "M"] : [1e9, "G"];
    return `${(n / d).toFixed(n / d < 10 ? 1 : 0)}${s}`;
  }
  // action a in cell s as a unit (dx, dy) on screen, from the world's direction table
  function dirOf(s, a) {
    const [dx, dy] = state.choices.directions[state.action_dirs[s * state.actions + a]];
    const n = Math.hypot(dx, dy);
    return [dx / n, dy / n];
  }

  function sizeCanvas() {
    if (!state) return;
    const avail = Math.min($("grid").parentElement.clientWidth - 32, 760);
    const tall = Math.max(300, Math.min(540, window.innerHeight - 250)); // keep the legend in view on a laptop
    cell = Math.max(state.rows > 16 ? 16 : 30, Math.min(110, Math.floor(Math.min(avail / state.cols, tall / state.rows))));
    const canvas = $("grid-canvas");
    const dpr = window.devicePixelRatio || 1;
    canvas.width = state.cols * cell * dpr; canvas.height = state.rows * cell * dpr;
    canvas.style.width = `${state.cols * cell}px`; canvas.style.height = `${state.rows * cell}px`;
    canvas.getContext("2d").setTransform(dpr, 0, 0, dpr, 0, 0);
  }

  function queueDraw() {
    if (drawQueued) return;
    drawQueued = true;
    requestAnimationFrame(() => { drawQueued = false; draw(); });
  }

  // greedy actions of one cell: what the agent would pick (all tied bests, or argmax's first)
  function greedy(qs, tieFirst) {
    const m = Math.max(...qs);
    const best = qs.map((_, a) => a).filter((a) => qs[a] >= m - 1e-12);
    if (tieFirst) return [best[0]];
    return best.length === qs.length ? [] : best;
  }

  function draw() {
    if (!state || !frame) return;
    const n = state.rows * state.cols;
    if (frame.q.length !== n * state.actions || frame.epoch !== state.epoch) return; // from before a change
    drawGrid();
    drawChart();
    $("episode").textContent = frame.episode.toLocaleString("en-US");
    $("episode").dataset.value = String(frame.episode);
    $("steps").textContent = String(frame.ep_step);
    $("return").textContent = fmt(frame.ep_return);
    $("total").textContent = frame.steps.toLocaleString("en-US");
    $("sps").textContent = Math.round(frame.sps).toLocaleString("en-US");
    $("sps").dataset.value = String(frame.sps);
    $("fps").textContent = String(frameTimes.length);
    $("fps").dataset.value = String(frameTimes.length);
    setRunning(frame.running);
  }

  function drawGrid() {
    const ctx = $("grid-canvas").getContext("2d");
    const { rows, cols, layout, scale } = state;
    const tieFirst = state.settings.tie_break === "first";
    const opt = state.show_optimal && state.optimal && !state.optimal.error ? state.optimal : null;
    const A = state.actions;
    const visits = state.show_visits && frame.visits && frame.visits.length === rows * cols ? frame.visits : null;
    const most = visits ? Math.max(1, ...visits) : 1;
    const maxq = [], greedyOut = [], shades = [];
    ctx.clearRect(0, 0, cols * cell, rows * cell);
    ctx.textAlign = "center"; ctx.textBaseline = "middle";
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) {
      const s = r * cols + c, ch = layout[r][c], x = c * cell, y = r * cell;
      const qs = frame.q.slice(A * s, A * s + A), m = Math.max(...qs);
      maxq.push(m.toFixed(4));
      const g = ch === "W" || ch === "G" || ch === "x" ? [] : greedy(qs, tieFirst);
      greedyOut.push(g.length ? g[0] : -1);
      const u = visits ? visitShade(visits[s], most) : 0;
      shades.push(visits ? u.toFixed(3) : "");
      if (ch === "W") { drawWall(ctx, x, y); continue; }
      if (ch === "G") { drawGoal(ctx, x, y); continue; }
      if (ch === "x") { drawOutOfReach(ctx, x, y); continue; }
      const t = m / scale;
      let ink;
      if (visits) {
        ctx.fillStyle = visits[s] > 0 ? ramp(YLGNBU, u) : UNVISITED;
        ink = u > 0.55 ? "#ffffff" : "#1f2937";
      } else {
        ctx.fillStyle = colour(t);
        ink = Math.abs(t) > 0.55 ? "#ffffff" : "#1f2937";
      }
      ctx.fillRect(x, y, cell, cell);
      const small = cell < 56, tiny = cell < 28;
      ctx.fillStyle = ink;
      ctx.font = `${Math.max(9, Math.round(cell * (opt ? 0.16 : 0.19)))}px system-ui, sans-serif`;
      const text = visits ? compact(visits[s]) : fmt(m);
      // with the overlay on, the learned value moves left to make room for V* on the right
      if (tiny) { /* no room for numbers: colours and arrows only */ }
      else if (opt && !small) { ctx.textAlign = "left"; ctx.fillText(text, x + cell * 0.07, y + cell * 0.84); ctx.textAlign = "center"; }
      else ctx.fillText(text, x + cell / 2, y + cell * 0.84);
      for (const a of g) arrow(ctx, x + cell / 2, y + cell * 0.42, dirOf(s, a), cell * 0.22, ink);
      if (ch === "S" && !small) { ctx.font = `600 ${Math.round(cell * 0.16)}px system-ui`; ctx.fillText("S", x + cell * 0.12, y + cell * 0.14); }
      if (ch === "T") drawTreasure(ctx, x, y);
      if (opt) drawOptimal(ctx, x, y, s, opt, ink, small || tiny);
    }
    ctx.strokeStyle = "#ffffff"; ctx.lineWidth = 2;
    for (let c = 1; c < cols; c++) line(ctx, c * cell, 0, c * cell, rows * cell);
    for (let r = 1; r < rows; r++) line(ctx, 0, r * cell, cols * cell, r * cell);
    const [ar, ac] = [Math.floor(frame.agent / cols), frame.agent % cols];
    ctx.beginPath(); ctx.arc(ac * cell + cell / 2, ar * cell + cell * 0.42, cell * 0.17, 0, 2 * Math.PI);
    ctx.fillStyle = "#4f46e5"; ctx.fill(); ctx.lineWidth = 2.5; ctx.strokeStyle = "#ffffff"; ctx.stroke();
    if (hover) {
      ctx.strokeStyle = "#111827"; ctx.lineWidth = 2;
      ctx.strokeRect(hover.c * cell + 1, hover.r * cell + 1, cell - 2, cell - 2);
      showTip(hover, opt);
    }
    if (searched) { // the searched cell: a dashed magenta frame
      ctx.strokeStyle = "#c026d3"; ctx.lineWidth = 3; ctx.setLineDash([6, 4]);
      ctx.strokeRect(searched.col * cell + 2.5, searched.row * cell + 2.5, cell - 5, cell - 5);
      ctx.setLineDash([]);
    }
    const grid = $("grid");
    grid.dataset.rows = String(rows); grid.dataset.cols = String(cols);
    grid.dataset.layout = layout.join("/");
    grid.dataset.maxq = maxq.join(",");
    grid.dataset.greedy = greedyOut.join(",");
    grid.dataset.visits = visits ? visits.join(",") : "";
    grid.dataset.shade = shades.join(",");
    grid.dataset.view = visits ? "visits" : "q";
    if (visits) $("visits-hi").textContent = compact(most);
    grid.dataset.searched = searched ? `${searched.row},${searched.col}` : "";
    grid.dataset.agent = String(frame.agent);
    grid.dataset.epoch = String(frame.epoch);
  }

  function arrow(ctx, cx, cy, [dx, dy], len, colour) {
    const x1 = cx + dx * len, y1 = cy + dy * len, h = Math.max(4, len * 0.38);
    ctx.strokeStyle = colour; ctx.fillStyle = colour; ctx.lineWidth = Math.max(1.5, cell * 0.03);
    line(ctx, cx, cy, x1 - dx * h * 0.6, y1 - dy * h * 0.6);
    ctx.beginPath(); ctx.moveTo(x1, y1);
    ctx.lineTo(x1 - dx * h - dy * h * 0.55, y1 - dy * h + dx * h * 0.55);
    ctx.lineTo(x1 - dx * h + dy * h * 0.55, y1 - dy * h - dx * h * 0.55);
    ctx.closePath(); ctx.fill();
  }

  function drawWall(ctx, x, y) {
    ctx.fillStyle = "#9ca3af"; ctx.fillRect(x, y, cell, cell);
    ctx.save(); ctx.beginPath(); ctx.rect(x, y, cell, cell); ctx.clip();
    ctx.strokeStyle = "rgba(255,255,255,0.25)"; ctx.lineWidth = 1.5;
    for (let k = -cell; k < cell; k += cell / 5) line(ctx, x + k, y + cell, x + k + cell, y);
    ctx.restore();
  }

  function drawOutOfReach(ctx, x, y) {
    ctx.fillStyle = UNVISITED; ctx.fillRect(x, y, cell, cell);
    ctx.fillStyle = "#d1d5db"; ctx.beginPath(); ctx.arc(x + cell / 2, y + cell / 2, Math.max(1.5, cell * 0.04), 0, 2 * Math.PI); ctx.fill();
  }

  function drawTreasure(ctx, x, y) { // DeepSea's bottom-right cell: an orange frame and the +1
    const w = Math.max(2, cell * 0.07);
    ctx.strokeStyle = "#f97316"; ctx.lineWidth = w; ctx.strokeRect(x + w / 2 + 1, y + w / 2 + 1, cell - w - 2, cell - w - 2);
    if (cell >= 28) {
      ctx.fillStyle = "#c2410c"; ctx.font = `700 ${Math.round(cell * 0.16)}px system-ui`;
      ctx.textAlign = "right"; ctx.fillText(`+${fmt(state.rewards.goal_reward).replace(/\.00$/, "")}`, x + cell * 0.9, y + cell * 0.17);
      ctx.textAlign = "center";
    }
  }

  function drawGoal(ctx, x, y) {
    ctx.fillStyle = "#fff7ed"; ctx.fillRect(x, y, cell, cell);
    const p = cell * 0.12;
    ctx.fillStyle = "#f97316"; ctx.fillRect(x + p, y + p, cell - 2 * p, cell - 2 * p);
    ctx.fillStyle = "#ffffff"; ctx.font = `700 ${Math.round(cell * 0.24)}px system-ui, sans-serif`;
    const gr = state.rewards.goal_reward;
    ctx.fillText(gr > 0 ? `+${fmt(gr).replace(/\.00$/, "")}` : "G", x + cell / 2, y + cell / 2);
  }

  // value iteration's overlay: V* top-right, optimal actions as teal wedges on the cell's edges
  function drawOptimal(ctx, x, y, s, opt, ink, small) {
    if (!small) {
      ctx.font = `italic ${Math.round(cell * 0.13)}px system-ui, sans-serif`;
      ctx.fillStyle = ink; ctx.textAlign = "right";
      ctx.fillText(`V* ${fmt(opt.v[s])}`, x + cell * 0.93, y + cell * 0.845);
      ctx.textAlign = "center";
    }
    ctx.fillStyle = "#0f766e";
    const w = cell * 0.09, cx = x + cell / 2, cy = y + cell / 2;
    for (let a = 0; a < state.actions; a++) {
      if (!(opt.actions[s] >> a & 1)) continue;
      const [dx, dy] = dirOf(s, a);
      const ex = cx + dx * cell * 0.5, ey = cy + dy * cell * 0.5;
      ctx.beginPath(); ctx.moveTo(ex, ey);
      ctx.lineTo(ex - dx * w * 1.3 - dy * w, ey - dy * w * 1.3 + dx * w);
      ctx.lineTo(ex - dx * w * 1.3 + dy * w, ey - dy * w * 1.3 - dx * w);
      ctx.closePath(); ctx.fill();
    }
  }

  function showTip(h, opt) {
    const tip = $("tip"), s = h.r * state.cols + h.c, ch = state.layout[h.r][h.c];
    const rw = state.rewards;
    const kind = {
      W: `wall: ${rw.wall_reward} when stepped on${rw.wall_terminal ? ", ends the episode" : ", bumps back"}`,
      G: `goal: ${rw.goal_reward >= 0 ? "+" : ""}${rw.goal_reward}, ends the episode`,
      T: `treasure: +${rw.goal_reward} for moving right here on the last step`,
      x: "out of reach: column > row, no episode gets here",
      S: "start", ".": "floor",
    }[ch];
    const A = state.actions, qs = frame.q.slice(A * s, A * s + A), m = Math.max(...qs);
    let html = `<div class="hd">row ${h.r}, col ${h.c} · ${kind}</div>`;
    if (ch !== "W" && ch !== "G" && ch !== "x") {
      html += qs.map((v, a) => {
        const name = state.choices.directions[state.action_dirs[s * A + a]][2];
        const txt = `Q(${A === 4 ? name : `${name}, action ${a}`}) = ${v.toFixed(4)}`;
        return v >= m - 1e-12 ? `<b>${txt}</b>` : txt;
      }).join("<br>");
      if (opt) html += `<br>V* = ${opt.v[s].toFixed(4)}`;
      if (frame.visits) html += `<br>visits N(s) = ${frame.visits[s].toLocaleString("en-US")}`;
    }
    tip.innerHTML = html;
    tip.hidden = false;
    const left = (h.c + 1) * cell + 8, top = h.r * cell;
    const flip = left + 190 > state.cols * cell + 40;
    tip.style.left = `${flip ? h.c * cell - 190 : left}px`;
    tip.style.top = `${top}px`;
  }

  function drawChart() {
    window.rlworksDraw.chart($("chart"), { returns: hist.returns, lengths: hist.lengths, episode: frame.episode,
      cap: state.settings.max_episode_steps, goal: state.rewards.goal_reward });
  }

  bindControls();
  connect();
})();
