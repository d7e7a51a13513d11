// rlworks lab page: the episode chart, and the two canvas helpers lab.js shares with it.
// Loaded before lab.js; everything it offers is on window.rlworksDraw.

(() => {
  function fmt(v) { return Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2); }

  function line(ctx, x0, y0, x1, y1) { ctx.beginPath(); ctx.moveTo(x0, y0); ctx.lineTo(x1, y1); ctx.stroke(); }

  // returns (orange, left axis) and lengths (indigo, right axis, 0..cap) of the recent episodes
  function chart(canvas, { returns: R, lengths: L, cap, goal, episode }) {
    const dpr = window.devicePixelRatio || 1;
    const W = canvas.clientWidth, H = canvas.clientHeight;
    if (canvas.width !== Math.round(W * dpr)) { canvas.width = Math.round(W * dpr); canvas.height = Math.round(H * dpr); }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, W, H);
    const pad = { l: 40, r: 40, t: 8, b: 18 };
    const pw = W - pad.l - pad.r, ph = H - pad.t - pad.b;
    let lo = Math.min(0, ...R), hi = Math.max(goal, ...R);
    if (hi - lo < 1e-9) hi = lo + 1;
    const n = Math.max(R.length, 2);
    const X = (i) => pad.l + (i / (n - 1)) * pw;
    const YR = (v) => pad.t + (1 - (v - lo) / (hi - lo)) * ph;
    const YL = (v) => pad.t + (1 - v / cap) * ph;
    ctx.strokeStyle = "#e5e7eb"; ctx.lineWidth = 1;
    for (const f of [0, 0.5, 1]) line(ctx, pad.l, pad.t + f * ph, pad.l + pw, pad.t + f * ph);
    ctx.font = "11px system-ui, sans-serif"; ctx.textBaseline = "middle";
    ctx.fillStyle = "#c2410c"; ctx.textAlign = "right";
    ctx.fillText(fmt(hi), pad.l - 5, pad.t + 4); ctx.fillText(fmt(lo), pad.l - 5, pad.t + ph - 2);
    ctx.fillStyle = "#4338ca"; ctx.textAlign = "left";
    ctx.fillText(String(cap), pad.l + pw + 5, pad.t + 4); ctx.fillText("0", pad.l + pw + 5, pad.t + ph - 2);
    ctx.fillStyle = "#6b7280"; ctx.textAlign = "right";
    ctx.fillText(`episode ${episode.toLocaleString("en-US")}`, pad.l + pw, H - 6);
    // raw episodes faint, a 20-episode running mean on top: the trend is what matters
    series(ctx, L, X, YL, "rgba(67,56,202,0.25)", 1);
    series(ctx, R, X, YR, "rgba(194,65,12,0.25)", 1);
    series(ctx, runningMean(L, 20), X, YL, "rgb(67,56,202)", 2);
    series(ctx, runningMean(R, 20), X, YR, "rgb(194,65,12)", 2);
    canvas.dataset.lengths = L.slice(-50).join(",");
    canvas.dataset.returns = R.slice(-50).map((v) => v.toFixed(3)).join(",");
    canvas.dataset.cap = String(cap);
  }

  function runningMean(ys, w) {
    let acc = 0;
    return ys.map((v, i) => { acc += v - (i >= w ? ys[i - w] : 0); return acc / Math.min(i + 1, w); });
  }

  function series(ctx, ys, X, Y, colour, width) {
    if (!ys.length) return;
    ctx.strokeStyle = colour; ctx.fillStyle = colour; ctx.lineWidth = width; ctx.beginPath();
    ys.forEach((v, i) => (i ? ctx.lineTo(X(i), Y(v)) : ctx.moveTo(X(i), Y(v))));
    ctx.stroke();
    if (ys.length < 60 && width > 1) ys.forEach((v, i) => { ctx.beginPath(); ctx.arc(X(i), Y(v), 2.5, 0, 2 * Math.PI); ctx.fill(); });
  }

  window.rlworksDraw = { fmt, line, chart };
})();
