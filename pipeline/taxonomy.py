"""The coin taxonomy (`taxonomy.yaml`): one sector (or one reason to leave it out) per coin, for
every coin that reached CoinMarketCap's top 150 since 2020, dead ones included.

A ticker is not an identity (LUNA was two coins, BTT was redenominated, ONE was BigONE before it
was Harmony), so a coin is keyed by its CoinGecko id and lists the exact CoinMarketCap
(symbol, name) pairs that mean it, dated where one pair meant two coins over time, and the
Binance spot pairs it traded under. Validated on load: an overlap or a typo would silently put a
market cap in the wrong sector, so it fails the run naming the file and the coin instead.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import cache
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import polars as pl
import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, field_validator, model_validator

from pipeline.config_file import ConfigError, read_yaml

DEFAULT_TAXONOMY = Path(__file__).with_name("taxonomy.yaml")
EXCLUDE_REASONS = ("stablecoin", "wrapped", "exchange_token", "privacy", "other")

ExcludeReason = Literal["stablecoin", "wrapped", "exchange_token", "privacy", "other"]
_SPOT = re.compile(r"^[A-Z0-9]+/[A-Z]+$")
_COIN_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
M = TypeVar("M", bound=BaseModel)


class TaxonomyError(ConfigError):
    """The taxonomy file is malformed; the message names the file and the coin (or category) at fault."""


def _a_date(value: object) -> object:
    """A calendar date, written 2022-10-01 (YAML's date) or as that string; a time of day or a number
    would be read as something the author did not mean."""
    if isinstance(value, dt.datetime):
        raise ValueError(f"{value!r} is a time: give a date like 2022-10-01")
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not a date like 2022-10-01") from None
    raise ValueError(f"{value!r} is not a date like 2022-10-01")


Day = Annotated[dt.date, BeforeValidator(_a_date)]


class Alias(BaseModel):
    """A CoinMarketCap (symbol, name) pair meaning this coin, from `since` to `until` (inclusive; open when absent)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: str
    name: str
    since: Day | None = None
    until: Day | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Alias:
        if not self.symbol.strip() or not self.name.strip():
            raise ValueError("symbol and name must not be empty")
        if self.since and self.until and self.since > self.until:
            raise ValueError(f"{self.symbol} / {self.name}: since {self.since} is after until {self.until}")
        return self

    def overlaps(self, other: Alias) -> bool:
        lo = max(self.since or dt.date.min, other.since or dt.date.min)
        hi = min(self.until or dt.date.max, other.until or dt.date.max)
        return lo <= hi

    def span(self) -> str:
        if self.since and self.until:
            return f"{self.since}..{self.until}"
        if self.since or self.until:
            return f"from {self.since}" if self.since else f"until {self.until}"
        return "undated"


class _Classified(BaseModel):
    """Exactly one of a sector or a reason to exclude."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sector: str | None = None
    exclude: ExcludeReason | None = None

    @model_validator(mode="after")
    def _one_of(self) -> _Classified:
        if (self.sector is None) == (self.exclude is None):
            raise ValueError("give exactly one of 'sector' or 'exclude'")
        return self


class Coin(_Classified):
    id: str
    note: str | None = None
    cmc: tuple[Alias, ...] = ()
    spot: tuple[str, ...] = ()

    @field_validator("spot")
    @classmethod
    def _spot_form(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for pair in v:
            if not _SPOT.match(pair):
                raise ValueError(f"spot pair {pair!r} is not in ccxt spot form like 'BTC/USDT'")
        if len(set(v)) != len(v):
            raise ValueError(f"a spot pair is listed twice: {list(v)}")
        return v


class CategoryRule(_Classified):
    """A CoinGecko category name and the sector (or exclusion) it means."""

    category: str


class Taxonomy(BaseModel):
    model_config = ConfigDict(frozen=True)

    sectors: tuple[str, ...]
    categories: tuple[CategoryRule, ...]
    coins: tuple[Coin, ...]

    def coins_frame(self) -> pl.DataFrame:
        """One row per coin: coin, sector (null if excluded), exclude (null if in a sector), note."""
        return pl.DataFrame(
            [(c.id, c.sector, c.exclude, c.note) for c in self.coins],
            schema={"coin": pl.String, "sector": pl.String, "exclude": pl.String, "note": pl.String},
            orient="row",
        )

    def aliases_frame(self) -> pl.DataFrame:
        """One row per CoinMarketCap alias: coin, symbol, name, since, until (null = open)."""
        return pl.DataFrame(
            [(c.id, a.symbol, a.name, a.since, a.until) for c in self.coins for a in c.cmc],
            schema={"coin": pl.String, "symbol": pl.String, "name": pl.String, "since": pl.Date,
                    "until": pl.Date},
            orient="row",
        )

    def spot_frame(self) -> pl.DataFrame:
        """One row per Binance spot pair: coin, symbol."""
        return pl.DataFrame(
            [(c.id, pair) for c in self.coins for pair in c.spot],
            schema={"coin": pl.String, "symbol": pl.String},
            orient="row",
        )

    def sector_for_categories(self, categories: list[str]) -> tuple[str | None, str | None]:
        """(sector, exclude) for a live coin not in `coins`, from its CoinGecko category names: the
        first rule in file order whose category the coin has wins; (None, None) when none does."""
        have = {c.strip().casefold() for c in categories}
        for rule in self.categories:
            if rule.category.strip().casefold() in have:
                return rule.sector, rule.exclude
        return None, None

    def coin(self, coin_id: str) -> Coin:
        for c in self.coins:
            if c.id == coin_id:
                return c
        raise KeyError(coin_id)


def parse_taxonomy(raw: object, origin: str = "<taxonomy>") -> Taxonomy:
    """Validate a parsed YAML document; every error names `origin` and the coin or category at fault."""
    if not isinstance(raw, dict) or not isinstance(raw.get("coins"), dict) or not raw["coins"]:
        raise TaxonomyError(f"{origin}: expected a mapping with 'sectors', 'categories' and a non-empty 'coins' mapping")
    unknown = sorted(str(k) for k in raw if k not in ("sectors", "categories", "coins"))
    if unknown:
        raise TaxonomyError(f"{origin}: unknown top-level key(s) {unknown}: expected sectors, categories, coins")
    sectors = raw.get("sectors")
    if not isinstance(sectors, list) or not sectors or not all(isinstance(s, str) for s in sectors):
        raise TaxonomyError(f"{origin}: 'sectors' must be a non-empty list of names")
    repeated = sorted({s for s in sectors if sectors.count(s) > 1})
    if repeated:
        raise TaxonomyError(f"{origin}: sectors: {repeated} listed more than once: give each sector once")

    rules = raw.get("categories") or []
    if not isinstance(rules, list):
        raise TaxonomyError(f"{origin}: 'categories' must be a list of {{category, sector | exclude}} entries")
    categories: list[CategoryRule] = []
    seen_categories: set[str] = set()
    for i, entry in enumerate(rules):
        what = f"categories[{i}]" + (f" ({entry.get('category')!r})" if isinstance(entry, dict) else "")
        if not isinstance(entry, dict):
            raise TaxonomyError(f"{origin}: {what}: expected a mapping, got {entry!r}")
        rule = _build(CategoryRule, entry, origin, what)
        _known_sector(rule, sectors, origin, what)
        key = rule.category.strip().casefold()
        if key in seen_categories:
            raise TaxonomyError(f"{origin}: {what}: category listed twice: only the first would ever match")
        seen_categories.add(key)
        categories.append(rule)

    coins: list[Coin] = []
    spot_owner: dict[str, str] = {}
    alias_owner: dict[tuple[str, str], list[tuple[Alias, str]]] = {}
    for key, entry in raw["coins"].items():
        if not isinstance(key, str) or not _COIN_ID.match(key):
            raise TaxonomyError(f"{origin}: coin {key!r}: the key must be a CoinGecko id like 'bitcoin' "
                                "(lower case, digits, hyphens; quote one that YAML reads as a number)")
        what = f"coin {key!r}"
        if not isinstance(entry, dict):
            raise TaxonomyError(f"{origin}: {what}: expected a mapping, got {entry!r}")
        if "id" in entry:
            raise TaxonomyError(f"{origin}: {what}: 'id' is the key itself, not a field")
        coin = _build(Coin, {**entry, "id": key}, origin, what)
        _known_sector(coin, sectors, origin, what)
        for pair in coin.spot:
            if pair in spot_owner:
                raise TaxonomyError(f"{origin}: {what}: spot pair {pair!r} is already used by coin {spot_owner[pair]!r}")
            spot_owner[pair] = key
        for alias in coin.cmc:
            for other, owner in alias_owner.get((alias.symbol, alias.name), []):
                if alias.overlaps(other):
                    whose = "its own other alias" if owner == key else f"coin {owner!r}"
                    raise TaxonomyError(
                        f"{origin}: {what}: CoinMarketCap alias {alias.symbol} / {alias.name} ({alias.span()}) "
                        f"overlaps {whose} ({other.span()}): a snapshot row would match twice; "
                        "date them with since/until")
            alias_owner.setdefault((alias.symbol, alias.name), []).append((alias, key))
        coins.append(coin)
    return Taxonomy(sectors=tuple(sectors), categories=tuple(categories), coins=tuple(coins))


def _build(model: type[M], entry: dict, origin: str, what: str) -> M:
    try:
        return model(**entry)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = "".join(f"{p}: " for p in [".".join(str(p) for p in err["loc"])] if p)
        raise TaxonomyError(f"{origin}: {what}: {field}{err['msg'].removeprefix('Value error, ')}") from None
    except TypeError as exc:  # a key that is not a string
        raise TaxonomyError(f"{origin}: {what}: {exc}") from None


def _known_sector(entry: _Classified, sectors: list[str], origin: str, what: str) -> None:
    if entry.sector is not None and entry.sector not in sectors:
        raise TaxonomyError(f"{origin}: {what}: sector {entry.sector!r} is not one of {sectors}")


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    path = Path(path) if path else DEFAULT_TAXONOMY
    return _load_cached(path.resolve())


@cache
def _load_cached(path: Path) -> Taxonomy:
    try:
        raw = read_yaml(path, TaxonomyError, "taxonomy")
    except ConfigError:
        raise
    except ValueError as exc:  # YAML read 2022-13-01 as a date and could not build it
        raise TaxonomyError(_bad_date(path) or f"{path}: not valid YAML: {exc}") from None
    return parse_taxonomy(raw, origin=str(path))


def _bad_date(path: Path) -> str | None:
    """Where YAML failed on an impossible date (2022-13-01), naming the coin: the parser itself says neither."""
    try:
        root = yaml.compose(path.read_text(), Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    for coin, node in _scalars(root):
        if node.tag == "tag:yaml.org,2002:timestamp":
            try:
                dt.date.fromisoformat(node.value[:10])
            except ValueError:
                who = f"coin {coin!r}: " if coin else ""
                return f"{path}: {who}line {node.start_mark.line + 1}: {node.value!r} is not a date like 2022-10-01"
    return None


def _scalars(node: yaml.Node | None, coin: str | None = None, top: bool = True):
    """Every scalar node under `node` with the coin whose entry holds it (None outside `coins`)."""
    if isinstance(node, yaml.ScalarNode):
        yield coin, node
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _scalars(item, coin, False)
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if top and key.value == "coins" and isinstance(value, yaml.MappingNode):
                for coin_key, entry in value.value:
                    yield from _scalars(entry, coin_key.value, False)
            else:
                yield from _scalars(key, coin, False)
                yield from _scalars(value, coin, False)
