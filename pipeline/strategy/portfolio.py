"""The user's own portfolio (`portfolio.yaml`): spot holdings by token, cash and open perps,
validated against the universe so a typo is an error that names it, never a silent zero."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pipeline.config_file import ConfigError, read_yaml, validate
from pipeline.universe import Universe

EXAMPLE_PORTFOLIO = Path(__file__).resolve().parent.parent / "portfolio.yaml"


class PortfolioError(ConfigError):
    """The portfolio file is malformed or names what the universe does not hold."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OpenPerp(_Strict):
    instrument: str  # ccxt perp symbol, e.g. BTC/USDT:USDT
    side: Literal["long", "short"]
    notional_usd: float = Field(gt=0)
    leverage: float = Field(1.0, ge=1)


class Portfolio(_Strict):
    holdings: dict[str, float] = {}  # token (as in universe.yaml) -> quantity held
    cash_usd: float = Field(0.0, ge=0)
    perps: list[OpenPerp] = []


def check_against(portfolio: Portfolio, universe: Universe, origin: str) -> Portfolio:
    """Every token and perp known to the universe, every quantity >= 0."""
    tokens = {t.name for t in universe.tokens}
    for token, quantity in portfolio.holdings.items():
        if token not in tokens:
            raise PortfolioError(f"{origin}: holdings.{token}: unknown token (not in the universe; "
                                 f"e.g. {', '.join(sorted(tokens)[:5])})")
        if not quantity >= 0:  # also refuses NaN
            raise PortfolioError(f"{origin}: holdings.{token}: quantity must be >= 0, got {quantity}")
    perps = set(universe.perp_symbols)
    for i, perp in enumerate(portfolio.perps):
        if perp.instrument not in perps:
            raise PortfolioError(f"{origin}: perps[{i}].instrument: {perp.instrument!r} is not a perp of the universe")
    return portfolio


def load_portfolio(path: str | Path, universe: Universe) -> Portfolio:
    """The portfolio file, validated against the universe. A file that states nothing (empty, or only
    comments) is an error: it is a truncated copy or the wrong file far more often than a portfolio,
    and orders for it would silently be for $0; one that holds nothing says so (`cash_usd: 0`)."""
    path = Path(path)
    raw = read_yaml(path, PortfolioError, "portfolio")
    if raw is None:
        raise PortfolioError(f"{path}: the file is empty: list your holdings, cash_usd and perps as in "
                             f"{EXAMPLE_PORTFOLIO} (a portfolio that holds nothing yet: `cash_usd: 0`)")
    return check_against(validate(raw, Portfolio, PortfolioError, str(path)), universe, str(path))


def holds_nothing(portfolio: Portfolio) -> bool:
    """No holding above 0, no cash and no perp: the orders for it are none, whatever the model says."""
    return not any(q > 0 for q in portfolio.holdings.values()) and not portfolio.cash_usd and not portfolio.perps
