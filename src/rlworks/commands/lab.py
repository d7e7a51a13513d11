"""``rlworks lab``: serve the live grid-world lab, or export its Q-value flood as GIF/PNG.

    rlworks lab [--host 127.0.0.1] [--port 8765] [--no-browser]
    rlworks lab --label PAIRS.jsonl [--labels OUT.jsonl]   (preference labelling at /label)
    rlworks lab --export out.gif|out.png [--episodes N] [--preset NAME | --layout "S..\\n.W.\\n..G"]
"""

from __future__ import annotations

import sys
import webbrowser

from rlworks.commands.parsing import Parser
from rlworks.config import ConfigError, check_range
from rlworks.lab.presets import PRESETS
from rlworks.lab.protocol import MAX_EXPORT_EPISODES, MAX_SIDE
from rlworks.tabular.learner import ALGORITHMS


def parser() -> Parser:
    p = Parser(prog="rlworks lab", description="The live grid-world lab: watch Q-values flood back from the goal.")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    p.add_argument("--port", type=int, default=8765, help="port to listen on (default 8765)")
    p.add_argument("--no-browser", action="store_true", help="print the URL but do not open a browser")
    g = p.add_argument_group("preference labelling (RLHF)")
    g.add_argument("--label", metavar="PAIRS", help="label the pairs in PAIRS.jsonl at /label (opens that page)")
    g.add_argument("--labels", metavar="OUT", help="where preferences go (default: PAIRS with suffix .labels.jsonl)")
    g = p.add_argument_group("export (no server)")
    g.add_argument("--export", metavar="FILE", help="write the Q-value flood to FILE (.gif or .png) and exit")
    g.add_argument("--episodes", type=int, default=200,
                   help=f"episodes to train for the export (1..{MAX_EXPORT_EPISODES})")
    g.add_argument("--preset", default="default", choices=list(PRESETS), help="preset map for the export")
    g.add_argument("--layout", help="ASCII map for the export, rows separated by \\n or newlines (S, G, W, .)")
    g.add_argument("--algorithm", default="q-learning", choices=list(ALGORITHMS))
    g.add_argument("--epsilon", type=float, default=0.2)
    g.add_argument("--alpha", type=float, default=0.1)
    g.add_argument("--gamma", type=float, default=0.95)
    g.add_argument("--seed", type=int, default=0)
    return p


def _export(args) -> int:
    from rlworks.lab import export

    check_range("--episodes", args.episodes, 1, MAX_EXPORT_EPISODES)
    check_range("--epsilon", args.epsilon, 0.0, 1.0)
    check_range("--alpha", args.alpha, 0.0, 1.0, low_open=True)
    check_range("--gamma", args.gamma, 0.0, 1.0)
    layout = None
    if args.layout:
        layout = [r for r in args.layout.replace("\\n", "\n").split("\n") if r.strip()]
        if len(layout) > MAX_SIDE or max(len(r) for r in layout) > MAX_SIDE:
            raise ConfigError(f"--layout is larger than {MAX_SIDE}x{MAX_SIDE}, the lab's limit")
    path = export.write(
        args.export, preset=args.preset, layout=layout, episodes=args.episodes, algorithm=args.algorithm,
        epsilon=args.epsilon, alpha=args.alpha, gamma=args.gamma, seed=args.seed,
    )  # fmt: skip
    print(f"wrote {path} ({path.stat().st_size:,} bytes, {args.episodes} episodes of {args.algorithm})")
    return 0


def main(argv: list[str]) -> int:
    """Entry point for ``rlworks lab``; bad flags and a busy port raise ConfigError."""
    args = parser().parse_args(argv)
    if args.labels and not args.label:
        raise ConfigError("--labels needs --label PAIRS.jsonl (the pairs to label)")
    if args.export:
        if args.label:
            raise ConfigError("--label and --export do not go together: pick one")
        return _export(args)
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port {args.port} is out of range: allowed 1..65535")
    from rlworks.lab.server import bind, make_server

    store = None
    if args.label:
        from rlworks.lab.labelling import LabelStore

        store = LabelStore(args.label, args.labels)  # validates the pairs file, repairs a torn last line
        done = store.progress()
        print(f"labelling {done['total']} pairs from {store.pairs_path} into {store.labels_path} "
              f"({done['labelled']} labelled, {done['skipped']} skipped so far)", flush=True)

    sock = bind(args.host, args.port)
    port = sock.getsockname()[1]
    shown = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{'127.0.0.1' if args.host in ('0.0.0.0', '::') else shown}:{port}/{'label' if store else ''}"
    print(f"rlworks lab: {url}  (Ctrl+C to stop)", flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {args.host}: anyone who can reach this machine can use the lab", flush=True)
    if not args.no_browser:
        try:
            webbrowser.open(url)
        except Exception:  # noqa: BLE001 - a missing browser must not stop the server
            pass
    server = make_server(sock, label_store=store)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except ConfigError as exc:
        print(f"rlworks lab: {exc}", file=sys.stderr)
        sys.exit(2)
