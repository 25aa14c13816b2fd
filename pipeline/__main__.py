"""Command line: `python -m pipeline demo [--rerun] | summary | sql [QUERY] | recommend [--portfolio FILE] [--as-of DATE]
| backtest [--from DATE] [--to DATE] [--execution-lag DAYS] [--fees-x FACTOR] | report [--as-of DATE] [--png DIR [--charts NAME ...]]`."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
from pathlib import Path

from pipeline.config_file import ConfigError
from pipeline.settings import PROJECT_ROOT
from warehouse import Warehouse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="replay the embedded (or ROTATION_REPLAY_DATA) dataset into the warehouse")
    demo.add_argument("--rerun", action="store_true",
                      help="run even when this dataset, code and configuration were already published")
    sub.add_parser("summary", help="rows and date range per table, and the latest phase, from the published snapshot")
    sql = sub.add_parser("sql", help="run read-only SQL on the published snapshot (no query: an interactive shell)")
    sql.add_argument("query", nargs="?")
    rec = sub.add_parser("recommend", help="the day's phase, allocation, hedges and the orders for a portfolio")
    rec.add_argument("--portfolio", type=Path, help="portfolio YAML (default: ROTATION_PORTFOLIO, else the example)")
    rec.add_argument("--as-of", type=dt.date.fromisoformat, help="YYYY-MM-DD (default: the newest recommendation)")
    bt = sub.add_parser("backtest", help="the strategy table: the playbook vs what a user would hold instead")
    bt.add_argument("--from", dest="first", type=dt.date.fromisoformat, help="first day of the window measured")
    bt.add_argument("--to", dest="last", type=dt.date.fromisoformat, help="last day of the window measured")
    bt.add_argument("--execution-lag", type=int, help="extra days before a decision trades (re-runs the backtest)")
    bt.add_argument("--fees-x", type=float, help="fees and slippage times this factor (re-runs the backtest)")
    rep = sub.add_parser("report", help="write the HTML report (warehouse/report/index.html) and print its path")
    rep.add_argument("--as-of", type=dt.date.fromisoformat,
                     help="YYYY-MM-DD: the page as it would have looked that day (written as report/<day>.html)")
    rep.add_argument("--png", type=Path, metavar="DIR", help="also write each chart as DIR/<chart>.png")
    rep.add_argument("--charts", nargs="+", metavar="CHART",
                     help="with --png, only these (rrg phases indices altseason allocation target_vs_portfolio "
                          "funding equity drawdowns)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # What `make` exports, so that the command typed by hand (from any folder) runs as `make demo` does
    os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT / ".dagster_home"))
    os.environ.setdefault("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "true")
    try:
        return run(args)
    except ConfigError as exc:  # the user's file or setting: one line naming it, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace) -> int:
    if args.command == "demo":
        from pipeline.demo import run_demo

        return run_demo(rerun=args.rerun)
    if args.command == "summary":
        from pipeline.demo import print_summary

        snapshot = Warehouse().snapshot_path  # never the writer's file: a run may hold its lock
        if not snapshot.exists():
            print(f"no published warehouse at {snapshot}: run `make demo` first", file=sys.stderr)
            return 1
        print_summary(Warehouse(snapshot), read_only=True)
        return 0
    if args.command == "recommend":
        from pipeline.brief import BriefError, brief

        try:
            print(brief(args.portfolio, args.as_of))
        except BriefError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.command == "backtest":
        from pipeline.scorecard import ScorecardError, scorecard

        if args.execution_lag is not None and args.execution_lag < 0 or args.fees_x is not None and args.fees_x < 0:
            print("error: --execution-lag and --fees-x must be >= 0", file=sys.stderr)
            return 2
        try:
            print(scorecard(args.first, args.last, args.execution_lag, args.fees_x))
        except ScorecardError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.command == "report":
        if args.charts and not args.png:
            print("error: --charts chooses which charts --png writes: give --png DIR too", file=sys.stderr)
            return 2
        from pipeline.brief import BriefError
        from pipeline.report import write_report
        from pipeline.settings import Settings

        try:
            print(write_report(Settings.from_env(), args.as_of, png_folder=args.png, png_charts=args.charts))
        except (BriefError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.command == "sql":
        snapshot = Warehouse().snapshot_path  # never the writer's file: a run may hold its lock
        if not snapshot.exists():
            print(f"no published warehouse at {snapshot}: run `make demo` first", file=sys.stderr)
            return 1
        with Warehouse(snapshot).connect(read_only=True) as con:
            if args.query:
                con.sql(args.query).show(max_rows=50)
            else:
                shell(con, snapshot)
        return 0
    return 2


def shell(con, path) -> None:
    """A minimal SQL prompt (the duckdb 2.0 wheel ships no CLI, and a 1.x CLI cannot open the file)."""
    import duckdb

    print(f"{path} (read-only). End a statement with ';'. Ctrl-D or .quit to leave.")
    buffer = ""
    while True:
        try:
            line = input("sql> " if not buffer else "...> ")
        except EOFError:
            print()
            return
        if line.strip() in (".quit", ".exit") and not buffer:
            return
        buffer += line + "\n"
        if buffer.rstrip().endswith(";"):
            try:
                result = con.sql(buffer)
                if result is not None:
                    result.show(max_rows=50)
            except duckdb.Error as exc:
                print(f"error: {exc}")
            buffer = ""


if __name__ == "__main__":
    sys.exit(main())
