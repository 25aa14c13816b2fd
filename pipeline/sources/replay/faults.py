"""Fault injection for the replay server: the failures real APIs produce, on demand.

Tests and benchmarks use these to prove the clients survive rate limits, outages, hangs and bad
payloads without a live API misbehaving at the right moment. A `FaultRule` says what goes wrong and
on which requests (path regex; the first N matches or a seeded rate); a `FaultPlan` holds the rules
of a running server and decides, per request, which ones fire. The payload mutilations live here
too, so the server only has to build correct answers.
"""

from __future__ import annotations

import json
import math
import random
import re
import threading
from dataclasses import dataclass
from typing import Any, Literal

FaultKind = Literal["429", "5xx", "timeout", "truncated_json", "missing_field", "duplicate_row", "latency"]
KINDS: tuple[str, ...] = ("429", "5xx", "timeout", "truncated_json", "missing_field", "duplicate_row", "latency")

# Columns of a kline row as both exchanges lay them out (Binance and Bybit agree up to volume).
KLINE_COLUMNS = ("openTime", "open", "high", "low", "close", "volume")


@dataclass
class FaultRule:
    """One kind of failure, on the requests whose path matches `path` (re.search; "" = all) and whose
    query string matches `query` (likewise; e.g. "symbol=ETHUSDT": one symbol's requests).

    Fires on every match, or on the first `times` matches, or with probability `rate` (or both:
    at most `times` firings drawn at `rate`). `field` names the key that `missing_field` drops
    from every object of the payload, or the kline column from which rows are cut ("" = "close").
    """

    kind: FaultKind
    path: str = ""
    times: int | None = None
    rate: float | None = None
    retry_after_s: float = 1.0
    status: int = 503
    delay_s: float = 5.0
    field: str = ""
    query: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {KINDS}")
        re.compile(self.path)  # a bad regex fails here, not on the first request
        re.compile(self.query)
        if self.times is not None and self.times < 0:
            raise ValueError(f"fault times must be >= 0, got {self.times}")
        if self.rate is not None and not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"fault rate must be in [0, 1], got {self.rate}")
        if self.kind == "5xx" and not 500 <= self.status <= 599:
            raise ValueError(f"5xx fault status must be 500..599, got {self.status}")

    @classmethod
    def parse(cls, spec: str) -> FaultRule:
        """Parse the CLI form `KIND[=VALUE][:PATH_REGEX[:RATE|xTIMES]]`.

        VALUE sets the kind's knob: seconds for 429/timeout/latency, the status for 5xx, the field
        for missing_field. E.g. `429=2:/api/v3/klines:0.1`, `5xx=502`, `missing_field=fundingRate:/fapi/`,
        `5xx=503:/protocol/:x5` (the first 5 matching requests only: an outage that ends).
        """
        head, _, rest = spec.partition(":")
        kind, _, value = head.partition("=")
        path, rate, times = rest, None, None
        if ":" in rest:
            maybe_path, _, tail = rest.rpartition(":")
            try:
                if tail.startswith("x"):
                    times = int(tail[1:])
                else:
                    rate = float(tail)
                path = maybe_path
            except ValueError:
                pass
        knobs: dict[str, Any] = {}
        if value:
            if kind == "429":
                knobs["retry_after_s"] = float(value)
            elif kind == "5xx":
                knobs["status"] = int(value)
            elif kind in ("timeout", "latency"):
                knobs["delay_s"] = float(value)
            elif kind == "missing_field":
                knobs["field"] = value
            else:
                raise ValueError(f"fault kind {kind!r} takes no =VALUE (in {spec!r})")
        return cls(kind=kind, path=path, rate=rate, times=times, **knobs)  # type: ignore[arg-type]


@dataclass
class _Armed:
    rule: FaultRule
    fired: int = 0


class FaultPlan:
    """The rules of one server, mutable while it runs; `draw` is the per-request decision."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._armed: list[_Armed] = []
        self.seed = seed

    @property
    def seed(self) -> int:
        return self._seed

    @seed.setter
    def seed(self, value: int) -> None:
        """Reseeding restarts the random sequence, so a rate-based run can be repeated exactly."""
        with self._lock:
            self._seed = value
            self._rng = random.Random(value)

    @property
    def rules(self) -> list[FaultRule]:
        with self._lock:
            return [a.rule for a in self._armed]

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self._armed.append(_Armed(rule))
        return rule

    def replace(self, rules: list[FaultRule]) -> None:
        with self._lock:
            self._armed = [_Armed(r) for r in rules]

    def clear(self) -> None:
        self.replace([])

    def draw(self, path: str, query: str = "") -> list[FaultRule]:
        """The rules that fire for this request (counted against their `times`)."""
        fired = []
        with self._lock:
            for armed in self._armed:
                rule = armed.rule
                if rule.path and not re.search(rule.path, path):
                    continue
                if rule.query and not re.search(rule.query, query):
                    continue
                if rule.times is not None and armed.fired >= rule.times:
                    continue
                if rule.rate is not None and self._rng.random() >= rule.rate:
                    continue
                armed.fired += 1
                fired.append(rule)
        return fired


def retry_after_header(rule: FaultRule) -> str:
    """Whole seconds, as Binance sends it; never 0, which would invite an immediate retry."""
    return str(max(1, math.ceil(rule.retry_after_s)))


def rate_limit_body(family: str, now_ms: int) -> Any:
    """A 429 payload in the API family's own shape, so clients take their real rate-limit path."""
    message = "Too many requests (replay fault)."
    if family == "binance":
        return {"code": -1003, "msg": message}
    if family == "bybit":
        return {"retCode": 10006, "retMsg": message, "result": {}, "retExtInfo": {}, "time": now_ms}
    if family == "coingecko":
        return {"status": {"error_code": 429, "error_message": message}}
    if family == "coinmarketcap":
        return {"status": {"error_code": 1008, "error_message": message, "credit_count": 0}}
    return {"error": message}


def gateway_page(status: int) -> bytes:
    """A 5xx comes from the gateway in front of the API: an HTML page, not the API's JSON."""
    return f"<html><body><h1>{status} Server Error</h1><p>replay fault</p></body></html>".encode()


def truncate(body: bytes) -> bytes:
    """Cut the payload mid-way, as a dropped connection or a proxy hiccup leaves it."""
    return body[: max(1, len(body) // 2)]


def duplicate_last(body: bytes) -> bytes:
    """Send the last row of a list payload twice, as a vendor's overlapping pages or a retried write
    upstream do (the copy is identical: same key, same values)."""
    rows = json.loads(body)
    if isinstance(rows, list) and rows:
        rows.append(rows[-1])
    return json.dumps(rows, separators=(",", ":")).encode()


def drop_field(body: bytes, field: str) -> bytes:
    """Remove `field` from every object in the payload and cut kline rows before that column."""
    name = field or "close"
    column = KLINE_COLUMNS.index(name) if name in KLINE_COLUMNS else KLINE_COLUMNS.index("close")

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items() if k != name}
        if isinstance(node, list):
            if node and all(isinstance(row, list) and len(row) >= len(KLINE_COLUMNS) for row in node):
                return [row[:column] for row in node]
            return [walk(item) for item in node]
        return node

    return json.dumps(walk(json.loads(body)), separators=(",", ":")).encode()
