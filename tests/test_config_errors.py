"""A mistake in the user's configuration is refused with one line naming the file, the field and
what to do: never a silent default, never a traceback, from wherever the command is typed."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from pipeline.brief import render
from pipeline.config_file import MAX_CONFIG_BYTES, ConfigError
from pipeline.quality.config import load_quality_config
from pipeline.strategy.playbook import load_playbook
from pipeline.strategy.portfolio import holds_nothing, load_portfolio
from pipeline.transforms.config import load_analytics_config
from pipeline.universe import load_universe

ROOT = Path(__file__).resolve().parents[1]
BTC = "  BTC: {sector: Core, bucket: core, spot: BTC/USDT, perp: BTC/USDT:USDT, coingecko: bitcoin}\n"
UNI = "  UNI: {sector: DeFi, bucket: mid, spot: UNI/USDT, coingecko: uniswap}\n"


def as_a_user_types(*args: str, env: dict[str, str], cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """`.venv/bin/python -m pipeline ...` with none of what the Makefile exports (PYTHONPATH, DAGSTER_HOME)."""
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DAGSTER_HOME") and not k.startswith("ROTATION_")}
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**base, **env})


def one_line_error(done: subprocess.CompletedProcess) -> str:
    """The command failed with exactly one line on stderr, `error: ...`, and no traceback anywhere."""
    assert "Traceback" not in done.stderr + done.stdout, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), done.stderr[-3000:]
    return lines[0]


# ------------------------------------------------------------------ a key given twice


@pytest.mark.parametrize(("name", "text", "line", "key", "load"), [
    ("portfolio.yaml", "holdings:\n  UNI: 2000\n  AAVE: 70\n  UNI: 5\n", 4, "UNI",
     lambda path: load_portfolio(path, load_universe())),
    ("universe.yaml", "sectors: [Core, DeFi]\ntokens:\n" + BTC + UNI + UNI.replace("uniswap", "uniswap-v2"), 5, "UNI",
     load_universe),
    ("playbook.yaml", "step: 0.05\ndrift_tolerance: 0.02\nstep: 0.10\n", 3, "step", load_playbook),
    ("analytics.yaml", "membership:\n  min_history_days: 30\n  min_history_days: 90\n", 3, "min_history_days",
     load_analytics_config),
    ("quality.yaml", "stale_after_days: 2\nstale_after_days: 5\n", 2, "stale_after_days", load_quality_config),
])
def test_a_key_given_twice_in_any_config_file_is_refused_naming_file_line_and_key(tmp_path, name, text, line, key, load):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as refused:
        load(path)  # YAML itself would keep the last value and say nothing
    assert str(refused.value).startswith(f"{path}: line {line}, ")
    assert f"duplicate key '{key}'" in str(refused.value)


def test_a_merge_key_may_still_override_what_it_merges(tmp_path):
    path = tmp_path / "universe.yaml"
    path.write_text("defi: &defi {sector: DeFi, bucket: mid}\nsectors: [Core, DeFi]\ntokens:\n" + BTC
                    + "  UNI: {<<: *defi, bucket: speculative, spot: UNI/USDT, coingecko: uniswap}\n")
    assert load_universe(path).token("UNI").bucket == "speculative"


# ------------------------------------------------------------------ what the command line prints


@pytest.fixture
def universe_with_a_sector_the_playbook_lacks(tmp_path) -> Path:
    path = tmp_path / "universe.yaml"
    path.write_text("sectors: [Core, DeFi, RWA]\ntokens:\n" + BTC + UNI
                    + "  ONDO: {sector: RWA, bucket: speculative, spot: ONDO/USDT, coingecko: ondo-finance}\n")
    return path


def test_a_universe_sector_without_a_bucket_in_the_playbook_is_refused_naming_both_files(
        tmp_path, universe_with_a_sector_the_playbook_lacks):
    universe = universe_with_a_sector_the_playbook_lacks
    mine = tmp_path / "mine.yaml"
    mine.write_text("holdings: {UNI: 10}\n")
    done = as_a_user_types("recommend", "--portfolio", str(mine), env={
        "ROTATION_UNIVERSE": str(universe), "ROTATION_WAREHOUSE": str(tmp_path / "rotation.duckdb")})
    error = one_line_error(done)
    # it would have had no allocation, silently
    assert error.startswith(f"error: {universe}: sectors: ['RWA'] have no bucket in the playbook's sector_buckets "
                            f"({ROOT / 'pipeline' / 'playbook.yaml'})")
    assert "add them there" in error


@pytest.mark.parametrize(("variable", "name", "text", "expected"), [
    ("ROTATION_PLAYBOOK", "playbook.yaml",
     "postures:\n  neutral:\n    core: {low: 0.6, target: 0.5, high: 0.7}\n"
     "    mid: {low: 0.25, target: 0.3, high: 0.35}\n    speculative: {low: 0.1, target: 0.2, high: 0.2}\n"
     "    strategy: mine\n",
     "playbook.yaml: postures.neutral.core: need low <= target <= high, got 0.6 / 0.5 / 0.7"),
    ("ROTATION_PLAYBOOK", "playbook.yaml", "hedging:\n  leverage: [2\n",
     "playbook.yaml: line 3, column 1: not valid YAML: while parsing a flow sequence: did not find expected ',' or ']'"),
    ("ROTATION_PORTFOLIO", "portfolio.yaml", "holdings:\n  UNI: 2000\n  UNI: 5\n",
     "portfolio.yaml: line 3, column 3: not valid YAML: duplicate key 'UNI' (first on line 2): give each key once"),
    ("ROTATION_PORTFOLIO", "portfolio.yaml", "# my holdings, to fill in\n",
     "portfolio.yaml: the file is empty: list your holdings, cash_usd and perps as in"),
    ("ROTATION_UNIVERSE", "universe.yaml", "sectors: [Core, DeFi]\ntokens:\n" + BTC + UNI + UNI,
     "universe.yaml: line 5, column 3: not valid YAML: duplicate key 'UNI' (first on line 4)"),
])
def test_recommend_names_the_file_and_field_of_a_config_mistake_in_one_line(tmp_path, variable, name, text, expected):
    path = tmp_path / name
    path.write_text(text)
    done = as_a_user_types("recommend", env={variable: str(path), "ROTATION_WAREHOUSE": str(tmp_path / "rotation.duckdb")})
    assert one_line_error(done).startswith(f"error: {tmp_path}/{expected}")


def test_a_portfolio_file_too_big_to_be_one_is_refused_before_it_is_read(tmp_path):
    huge = tmp_path / "portfolio.yaml"
    row = "  UNI: 1\n"
    huge.write_text("holdings:\n" + row * (MAX_CONFIG_BYTES // len(row) + 1))
    done = as_a_user_types("recommend", "--portfolio", str(huge), env={"ROTATION_WAREHOUSE": str(tmp_path / "rotation.duckdb")})
    assert one_line_error(done) == (f"error: {huge}: {huge.stat().st_size:,} bytes is too big for a portfolio file "
                                    "(at most 2,097,152): is it the file you meant?")


def test_a_portfolio_that_holds_nothing_gets_no_orders_and_is_told_why(tmp_path):
    nothing = tmp_path / "portfolio.yaml"
    nothing.write_text("cash_usd: 0\n")  # stated, not an empty file: "I hold nothing yet"
    portfolio = load_portfolio(nothing, load_universe())
    rotation = pl.DataFrame({"sector": ["Core"], "bucket": ["core"], "current_weight": [None], "target_weight": [1.0],
                             "action": ["hold"], "rationale": ["BTC-led"], "posture": ["neutral"]},
                            schema_overrides={"current_weight": pl.Float64})
    orders = pl.DataFrame(schema={"instrument": pl.String, "side": pl.String, "reason": pl.String})
    page = render(dt.date(2025, 8, 2), pl.DataFrame(), rotation, pl.DataFrame(), orders, nothing, holds_nothing=holds_nothing(portfolio))
    assert f"Orders for {nothing}" in page
    assert "none: the portfolio holds nothing (no holding above 0, no cash_usd, no perps)" in page
    assert "within the drift tolerance" not in page  # what it said before: as if $0 were a balanced portfolio


# ------------------------------------------------------------------ the demo


def test_the_demo_refuses_a_broken_playbook_in_one_line_before_it_runs(tmp_path):
    playbook = tmp_path / "playbook.yaml"
    playbook.write_text("hedging:\n  leverage: 4\n")
    warehouse = tmp_path / "rotation.duckdb"
    done = as_a_user_types("demo", env={"ROTATION_PLAYBOOK": str(playbook), "ROTATION_WAREHOUSE": str(warehouse)})
    assert one_line_error(done) == f"error: {playbook}: hedging: hedge leverage 4.0 is above max_leverage 3.0"
    assert "Materialising" not in done.stdout  # no run was started: nothing to roll back
    assert not warehouse.exists()


def test_the_real_demo_without_its_dataset_folder_says_what_the_folder_should_hold(tmp_path):
    missing = tmp_path / "shared" / "data" / "real"  # ../shared not beside this clone
    done = as_a_user_types("demo", env={"ROTATION_REPLAY_DATA": str(missing),
                                        "ROTATION_WAREHOUSE": str(tmp_path / "real.duckdb")})
    error = one_line_error(done)
    assert error.startswith(f"error: ROTATION_REPLAY_DATA={missing}: replay dataset folder not found: {missing}. ")
    assert "ohlcv_1d.parquet, funding_8h.parquet, chain_tvl_1d.parquet, btc_dominance_1d.parquet" in error
    assert error.endswith("unset ROTATION_REPLAY_DATA to replay the embedded synthetic market")


def test_the_command_typed_in_another_folder_runs_the_project(tmp_path):
    playbook = tmp_path / "playbook.yaml"
    playbook.write_text("step: 0\n")
    done = as_a_user_types("demo", env={"ROTATION_PLAYBOOK": "playbook.yaml",  # relative to where it is typed
                                        "ROTATION_WAREHOUSE": str(tmp_path / "rotation.duckdb")}, cwd=tmp_path)
    assert "No module named pipeline" not in done.stderr, "the venv lacks the project's .pth: run `make env`"
    assert one_line_error(done) == f"error: {playbook}: step: Input should be greater than 0"


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_demo_from_another_folder_with_a_broken_playbook_prints_the_one_line(tmp_path):
    playbook = tmp_path / "playbook.yaml"
    playbook.write_text("cadence:\n  posture: yearly\n")
    # as typed at a shell: not inside the `make test` that runs this test (its MAKELEVEL would make it "make[1]")
    base = {k: v for k, v in os.environ.items() if not k.startswith("ROTATION_") and k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    done = subprocess.run(["make", "-C", str(ROOT), "demo"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**base, "ROTATION_PLAYBOOK": str(playbook), "ROTATION_WAREHOUSE": str(tmp_path / "w.duckdb")})
    assert done.returncode != 0 and "Traceback" not in done.stderr + done.stdout
    error, make = done.stderr.strip().splitlines()  # ours, then Make's own "Error 1"
    assert error == (f"error: {playbook}: cadence.posture: Input should be 'monthly', 'weekly' or 'daily'")
    assert make.startswith("make: *** [Makefile:") and make.endswith("demo] Error 1")


def test_the_scheduled_night_refuses_a_universe_sector_without_a_bucket_before_any_asset_runs(
        monkeypatch, universe_with_a_sector_the_playbook_lacks):
    import dagster as dg

    from pipeline.resources import StrategySettings
    from pipeline.strategy.playbook import PlaybookError

    monkeypatch.setenv("ROTATION_UNIVERSE", str(universe_with_a_sector_the_playbook_lacks))
    with pytest.raises(PlaybookError, match=r"sectors: \['RWA'\] have no bucket in the playbook's sector_buckets"):
        StrategySettings().setup_for_execution(dg.build_init_resource_context())


def test_a_run_failing_in_a_resource_tells_the_demo_why_not_see_the_run_log():
    import dagster as dg

    from pipeline.demo import failure_message
    from pipeline.strategy.playbook import PlaybookError

    @dg.resource
    def strategy(_):
        raise PlaybookError("playbook.yaml: step: Input should be greater than 0")

    @dg.op(required_resource_keys={"strategy"})
    def recommendations():
        pass

    @dg.job(resource_defs={"strategy": strategy})
    def nightly():
        recommendations()

    result = nightly.execute_in_process(raise_on_error=False)
    failed = [e for e in result.all_events if e.is_step_failure or e.is_resource_init_failure]
    assert failure_message(failed[0]) == "pipeline.strategy.playbook.PlaybookError: playbook.yaml: step: Input should be greater than 0"
