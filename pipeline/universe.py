"""The investable universe (`universe.yaml`): sectors, risk buckets and the ids each source needs.

Validated on load so that a typo fails the run up front, naming the bad entry, instead of
surfacing as a missing symbol three assets later.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from pipeline.config_file import ConfigError, read_yaml

DEFAULT_UNIVERSE = Path(__file__).with_name("universe.yaml")

Bucket = Literal["core", "mid", "speculative"]
_SPOT = re.compile(r"^[A-Z0-9]+/[A-Z]+$")
_PERP = re.compile(r"^[A-Z0-9]+/[A-Z]+:[A-Z]+$")


class UniverseError(ConfigError):
    """The universe file is malformed; the message names the file and the bad entry."""


class Token(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    sector: str
    bucket: Bucket
    spot: str
    perp: str | None = None
    coingecko: str
    defillama: str | None = None  # protocol slug, for DeFi tokens
    defillama_chain: str | None = None  # chain name, for tokens whose chain TVL we track

    @field_validator("spot")
    @classmethod
    def _spot_form(cls, v: str) -> str:
        if not _SPOT.match(v):
            raise ValueError(f"spot symbol {v!r} is not in ccxt spot form like 'BTC/USDT'")
        return v

    @field_validator("perp")
    @classmethod
    def _perp_form(cls, v: str | None) -> str | None:
        if v is not None and not _PERP.match(v):
            raise ValueError(f"perp symbol {v!r} is not in ccxt linear-perp form like 'BTC/USDT:USDT'")
        return v


class Universe(BaseModel):
    model_config = ConfigDict(frozen=True)

    sectors: tuple[str, ...]
    tokens: tuple[Token, ...]

    @property
    def spot_symbols(self) -> list[str]:
        return [t.spot for t in self.tokens]

    @property
    def perp_symbols(self) -> list[str]:
        return [t.perp for t in self.tokens if t.perp]

    @property
    def protocol_slugs(self) -> list[str]:
        return [t.defillama for t in self.tokens if t.defillama]

    @property
    def tvl_chains(self) -> list[str]:
        return [t.defillama_chain for t in self.tokens if t.defillama_chain]

    def frame(self, ids: bool = False) -> pl.DataFrame:
        """One row per token (token, symbol, sector, bucket, perp): what the analytics join on; with
        `ids`, its CoinGecko id too (what the market-cap rankings know it by)."""
        frame = pl.DataFrame(
            [(t.name, t.spot, t.sector, t.bucket, t.perp, t.coingecko) for t in self.tokens],
            schema={"token": pl.String, "symbol": pl.String, "sector": pl.String, "bucket": pl.String,
                    "perp": pl.String, "coingecko": pl.String},
            orient="row",
        )
        return frame if ids else frame.drop("coingecko")

    def token(self, name: str) -> Token:
        for t in self.tokens:
            if t.name == name:
                return t
        raise KeyError(name)


def parse_universe(raw: object, origin: str = "<universe>") -> Universe:
    """Validate a parsed YAML document; every error names `origin` and the token at fault."""
    if not isinstance(raw, dict) or not isinstance(raw.get("tokens"), dict) or not raw["tokens"]:
        raise UniverseError(f"{origin}: expected a mapping with 'sectors' and a non-empty 'tokens' mapping")
    sectors = raw.get("sectors")
    if not isinstance(sectors, list) or not sectors or not all(isinstance(s, str) for s in sectors):
        raise UniverseError(f"{origin}: 'sectors' must be a non-empty list of names")
    repeated = sorted({s for s in sectors if sectors.count(s) > 1})
    if repeated:
        raise UniverseError(f"{origin}: sectors: {repeated} listed more than once: give each sector once")
    tokens: list[Token] = []
    seen: dict[str, str] = {}
    for name, entry in raw["tokens"].items():
        if not isinstance(entry, dict):
            raise UniverseError(f"{origin}: token {name!r}: expected a mapping, got {entry!r}")
        try:
            token = Token(name=str(name), **entry)
        except (ValidationError, TypeError) as exc:
            raise UniverseError(f"{origin}: token {name!r}: {_first_error(exc)}") from None
        if token.sector not in sectors:
            raise UniverseError(
                f"{origin}: token {name!r}: sector {token.sector!r} is not one of {sectors}"
            )
        for symbol in filter(None, (token.spot, token.perp)):
            if symbol in seen:
                raise UniverseError(
                    f"{origin}: token {name!r}: symbol {symbol!r} is already used by {seen[symbol]!r}"
                )
            seen[symbol] = token.name
        tokens.append(token)
    return Universe(sectors=tuple(sectors), tokens=tuple(tokens))


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "entry"
        return f"{field}: {err['msg']}"
    return str(exc)


def load_universe(path: str | Path | None = None) -> Universe:
    path = Path(path) if path else DEFAULT_UNIVERSE
    return _load_cached(path.resolve())


@cache
def _load_cached(path: Path) -> Universe:
    return parse_universe(read_yaml(path, UniverseError, "universe"), origin=str(path))
