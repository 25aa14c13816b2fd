"""Command line: serve a replay dataset on a local port until Ctrl-C.

    python -m pipeline.sources.replay --data ../shared/data/real --port 8765
    python -m pipeline.sources.replay --port 8765 --fault 429=2:/api/v3/klines:0.05 --fault 5xx=502::0.01

Without --data it serves the embedded synthetic market (generated on first use). The first line on
stdout is the base URL, so scripts can start it and read where it listens.
"""

from __future__ import annotations

import argparse
import logging
import threading
from pathlib import Path

from pipeline.sources.replay.dataset import Dataset, load_dataset
from pipeline.sources.replay.faults import FaultRule
from pipeline.sources.replay.server import ReplayServer

DEFAULT_SYNTHETIC = Path("warehouse/replay")


def _fault(spec: str) -> FaultRule:
    try:
        return FaultRule.parse(spec)
    except (ValueError, TypeError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _synthetic() -> Dataset:
    # Imported here: the synthetic generator is only needed when no --data is given.
    from pipeline.sources.replay.synthetic import ensure_synthetic

    return load_dataset(ensure_synthetic(DEFAULT_SYNTHETIC))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.sources.replay",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path,
                        help=f"dataset folder (default: the synthetic market in {DEFAULT_SYNTHETIC})")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port (printed)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added to every request")
    parser.add_argument("--fault", type=_fault, action="append", default=[],
                        metavar="KIND[=VALUE][:PATH_REGEX[:RATE|xTIMES]]",
                        help="inject a fault: 429|5xx|timeout|truncated_json|missing_field|duplicate_row|latency; VALUE = seconds "
                             "(429, timeout, latency), status (5xx) or field (missing_field); xTIMES = first TIMES matches only; repeatable")
    parser.add_argument("--seed", type=int, default=0, help="seed of rate-based faults")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(message)s")

    dataset = load_dataset(args.data) if args.data else _synthetic()
    server = ReplayServer(dataset, host=args.host, port=args.port, latency_s=args.latency_ms / 1000)
    server.faults.seed = args.seed
    for rule in args.fault:
        server.faults.add(rule)
    print(server.start(), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
