"""The synthetic market: deterministic, loadable as a replay dataset, valid, and driven by its regimes."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pipeline.sources.replay.dataset import load_dataset
from pipeline.sources.replay.synthetic import GENERATOR, PHASES, ensure_synthetic, generate

AS_OF = dt.date(2025, 8, 2)
CORE = ("BTC/USDT", "ETH/USDT")


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return generate(tmp_path / "synthetic", AS_OF)


def _parquet(path: Path, name: str) -> pl.DataFrame:
    return pl.read_parquet(path / f"{name}.parquet")


def test_same_seed_gives_identical_files_and_another_seed_differs(tmp_path):
    first = generate(tmp_path / "a", AS_OF, seed=11)
    second = generate(tmp_path / "b", AS_OF, seed=11)
    other = generate(tmp_path / "c", AS_OF, seed=12)
    files = sorted(p.name for p in first.glob("*.parquet"))
    assert len(files) == 9
    for name in files:
        assert_frame_equal(pl.read_parquet(first / name), pl.read_parquet(second / name))
        assert (first / name).read_bytes() == (second / name).read_bytes()
    assert not _parquet(first, "ohlcv_1d")["close"].equals(_parquet(other, "ohlcv_1d")["close"])


def test_the_replay_loads_it_with_the_right_as_of(dataset):
    loaded = load_dataset(dataset)
    assert loaded.label == "synthetic"
    assert loaded.as_of == AS_OF
    assert loaded.ohlcv["date"].max() == AS_OF
    assert loaded.funding["ts"].max().date() == AS_OF
    assert loaded.total_tvl is not None and loaded.protocol_tvl is not None
    meta = json.loads((dataset / "dataset.json").read_text())
    assert meta["seed"] == 7 and meta["start"] == str(loaded.first_date)
    assert "NOT real prices" in meta["description"]


def test_candles_are_valid_and_continuous(dataset):
    ohlcv = _parquet(dataset, "ohlcv_1d")
    assert ohlcv.height > 30_000
    assert ohlcv.filter(
        (pl.col("low") <= 0)
        | (pl.col("high") < pl.max_horizontal("open", "close"))
        | (pl.col("low") > pl.min_horizontal("open", "close"))
        | (pl.col("volume") < 0)
    ).is_empty()
    chained = ohlcv.sort("symbol", "date").with_columns(
        gap=(pl.col("open") / pl.col("close").shift().over("symbol") - 1).abs(),
        step=pl.col("date").diff().over("symbol"),
    )
    assert chained["gap"].max() < 0.01
    assert chained["step"].max() == dt.timedelta(days=1)
    dollar_volume = ohlcv.group_by("symbol").agg((pl.col("close") * pl.col("volume")).median())["close"]
    assert dollar_volume.min() > 1e5 and dollar_volume.max() > 1e9
    assert ohlcv["close"].min() < 0.001


def test_universe_listings_stagger_and_two_tokens_delist(dataset):
    spans = _parquet(dataset, "ohlcv_1d").group_by("symbol").agg(
        first=pl.col("date").min(), last=pl.col("date").max()
    )
    start = spans["first"].min()
    assert spans.filter(~pl.col("symbol").is_in(CORE)).height >= 30
    assert spans.filter(pl.col("symbol").is_in(CORE))["first"].to_list() == [start, start]
    late = spans.filter(pl.col("first") > start)
    assert 10 <= late.height <= 20
    assert late["first"].n_unique() == late.height
    delisted = spans.filter(pl.col("last") < AS_OF)
    assert delisted.height == 2
    assert all(150 <= (AS_OF - last).days <= 300 for last in delisted["last"])


def test_every_phase_occurs_at_least_twice_in_blocks(dataset):
    regimes = _parquet(dataset, "regimes_1d")
    blocks = (
        regimes.with_columns(block=(pl.col("phase") != pl.col("phase").shift()).fill_null(True).cum_sum())
        .group_by("block", maintain_order=True)
        .agg(pl.col("phase").first(), days=pl.len())
    )
    assert blocks["phase"].value_counts()["count"].min() >= 2
    assert set(blocks["phase"]) == set(PHASES)
    assert blocks["days"].slice(1, blocks.height - 2).min() >= 30  # first and last are cut by the window


def test_dominance_is_a_share_and_moves_with_the_regimes(dataset):
    dominance = _parquet(dataset, "btc_dominance_1d")
    pct = dominance["btc_dominance_pct"]
    assert 0 < pct.min() and pct.max() < 100
    assert pct.diff().abs().max() < 3  # no one-day glitches
    drift = (
        dominance.select("date", change=pl.col("btc_dominance_pct").diff())
        .join(_parquet(dataset, "regimes_1d"), on="date")
        .group_by("phase")
        .agg(pl.col("change").mean())
    )
    by_phase = dict(drift.iter_rows())
    assert by_phase["bear"] > 0 and by_phase["btc_dominance"] > 0 and by_phase["altcoin_surge"] < 0


def test_regimes_drive_alt_returns_against_btc(dataset):
    returns = (
        _parquet(dataset, "ohlcv_1d")
        .sort("symbol", "date")
        .with_columns(ret=pl.col("close").pct_change().over("symbol"))
        .drop_nulls("ret")
    )
    btc = returns.filter(pl.col("symbol") == "BTC/USDT").select("date", btc="ret")
    alts = returns.filter(~pl.col("symbol").is_in(CORE)).group_by("date").agg(alts=pl.col("ret").mean())
    excess = (
        alts.join(btc, on="date")
        .join(_parquet(dataset, "regimes_1d"), on="date")
        .group_by("phase")
        .agg(excess=(pl.col("alts") - pl.col("btc")).mean(), btc=pl.col("btc").mean())
    )
    by_phase = {row["phase"]: row for row in excess.iter_rows(named=True)}
    assert by_phase["altcoin_surge"]["excess"] > 0 and by_phase["altcoin_surge"]["btc"] > 0
    assert by_phase["bear"]["excess"] < 0 and by_phase["bear"]["btc"] < 0


def test_funding_intervals_and_contract_size(dataset):
    funding = _parquet(dataset, "funding_8h")
    four_hour = json.loads((dataset / "dataset.json").read_text())["funding_interval_hours"]
    assert four_hour == {"DOGE/USDT:USDT": 4, "1000PEPE/USDT:USDT": 4}
    per_day = (
        funding.group_by("symbol", pl.col("ts").dt.date())
        .len()
        .group_by("symbol")
        .agg(fewest=pl.col("len").min(), most=pl.col("len").max())
    )
    for symbol, fewest, most in per_day.iter_rows():
        assert fewest == most == 24 // four_hour.get(symbol, 8), symbol
    assert funding["funding_rate"].abs().max() <= 0.003
    pepe = funding.filter(pl.col("symbol") == "1000PEPE/USDT:USDT", pl.col("ts").dt.hour() == 0).select(
        date=pl.col("ts").dt.date(), mark=pl.col("mark_price")
    )
    spot = _parquet(dataset, "ohlcv_1d").filter(pl.col("symbol") == "PEPE/USDT").select("date", "open")
    ratio = pepe.join(spot, on="date")
    assert ratio.height > 0
    assert ((ratio["mark"] / ratio["open"]) - 1000).abs().max() < 1e-6


def test_tvl_files_cover_the_universe(dataset):
    chains = _parquet(dataset, "chain_tvl_1d")
    assert {"ethereum", "bsc", "arbitrum"} <= set(chains["chain"])
    assert chains["tvl_usd"].dtype == pl.Int64 and chains["tvl_usd"].min() > 0
    total = _parquet(dataset, "total_tvl_1d").join(
        chains.group_by("date").agg(chains=pl.col("tvl_usd").sum()), on="date"
    )
    assert (total["tvl_usd"] > total["chains"]).all()
    protocols = _parquet(dataset, "protocol_tvl_1d")
    assert {"uniswap", "aave"} <= set(protocols["protocol"])


def test_ensure_synthetic_generates_once_then_reuses(tmp_path):
    path = ensure_synthetic(tmp_path / "cache", AS_OF, seed=3)
    assert path == tmp_path / "cache" / f"synthetic-{AS_OF}-seed3"
    stamp = (path / "ohlcv_1d.parquet").stat().st_mtime_ns
    assert ensure_synthetic(tmp_path / "cache", AS_OF, seed=3) == path
    assert (path / "ohlcv_1d.parquet").stat().st_mtime_ns == stamp


def test_ensure_synthetic_makes_again_a_folder_an_older_generator_made(tmp_path):
    path = ensure_synthetic(tmp_path / "cache", AS_OF, seed=3)
    meta = json.loads((path / "dataset.json").read_text())
    assert meta["generator"] == GENERATOR
    # What the generator before the life cycle left in a cache: no market caps, no dead tokens.
    (path / "market_caps_monthly.parquet").unlink()
    (path / "ohlcv_1d_delisted.parquet").unlink()
    (path / "dataset.json").write_text(json.dumps(meta | {"generator": "pipeline.sources.replay.synthetic v1"}))
    assert ensure_synthetic(tmp_path / "cache", AS_OF, seed=3) == path
    assert (path / "market_caps_monthly.parquet").exists() and (path / "ohlcv_1d_delisted.parquet").exists()
    assert json.loads((path / "dataset.json").read_text())["generator"] == GENERATOR
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [path.name]


def test_a_generation_failing_midway_leaves_no_folder_behind(tmp_path, monkeypatch):
    write = pl.DataFrame.write_parquet
    written: list[Path] = []

    def fill_the_disk_on_the_third_file(frame, file, *args, **kwargs):
        if len(written) == 2:
            raise OSError("disk full")
        write(frame, file, *args, **kwargs)
        written.append(Path(file))

    monkeypatch.setattr(pl.DataFrame, "write_parquet", fill_the_disk_on_the_third_file)
    cache = tmp_path / "cache"
    with pytest.raises(OSError, match="disk full"):
        ensure_synthetic(cache, AS_OF)
    assert len(written) == 2
    assert list(cache.iterdir()) == []
