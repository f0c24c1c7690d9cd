"""``obslink demo``: the whole path on one machine (the work is in :mod:`obslink.demo`)."""

from __future__ import annotations

from pathlib import Path

from obslink.cli.options import command


def add_commands(commands) -> None:
    demo = command(commands, "demo", cmd_demo, "broker + collector + simulated stations, end "
                   "to end, with a summary")
    demo.add_argument("--stations", type=int, default=3, help="simulated stations (default 3)")
    demo.add_argument("--duration", type=float, default=20.0,
                      help="seconds of simulated reporting (default 20)")
    demo.add_argument("--speed", type=float, default=120.0,
                      help="simulated seconds per real second (default 120: a one-minute "
                      "logger writes every 0.5 s)")
    demo.add_argument("--dir", type=Path, default=None,
                      help="keep everything (catalog, outboxes, logs) here; default a temp dir")
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")


def cmd_demo(args) -> int:
    from obslink.demo.run import run_demo

    return run_demo(args.stations, args.duration, args.speed, args.dir, as_json=args.json)
