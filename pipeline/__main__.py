"""Command line: `python -m pipeline demo | summary | sql QUERY`."""

from __future__ import annotations

import argparse
import logging
import sys

from warehouse import Warehouse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="replay the embedded (or ROTATION_REPLAY_DATA) dataset into the warehouse")
    sub.add_parser("summary", help="rows and date range per raw table")
    sql = sub.add_parser("sql", help="run a read-only SQL query on the warehouse and print the result")
    sql.add_argument("query")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    if args.command == "demo":
        from pipeline.demo import run_demo

        return run_demo()
    if args.command == "summary":
        from pipeline.demo import print_summary

        print_summary(Warehouse())
        return 0
    if args.command == "sql":
        warehouse = Warehouse()
        if not warehouse.path.exists():
            print(f"no warehouse at {warehouse.path}: run `make demo` first", file=sys.stderr)
            return 1
        with warehouse.connect(read_only=True) as con:
            con.sql(args.query).show(max_rows=50)
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
