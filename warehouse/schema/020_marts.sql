-- Marts: what the analytics derive from the raw tables, one row per key, upserted per run.
-- Every value on day D is computed from data up to D only (no look-ahead); see pipeline/transforms/.
CREATE SCHEMA IF NOT EXISTS marts;

-- The universe as it was: each day's coins, their sector, size bucket, market-cap rank and why they
-- were in or out of their sector's index (pipeline/transforms/universe_membership.py). One row per
-- candle of a coin with a sector, plus, on snapshot days, the ranked coins that had none.
CREATE TABLE IF NOT EXISTS marts.universe_membership (
    date            DATE    NOT NULL,
    coin            VARCHAR NOT NULL,   -- the taxonomy's id (pipeline/taxonomy.yaml), e.g. terra-luna
    symbol          VARCHAR,            -- its spot pair, e.g. LUNA/USDT; null: none known
    sector          VARCHAR,            -- null: excluded or unclassified
    bucket          VARCHAR,            -- core | mid | speculative (by rank, point in time)
    rank            INTEGER,            -- by market cap in the newest snapshot known that day; null: not ranked
    alt_rank        INTEGER,            -- rank among the altcoin season's alts (no BTC, stablecoins, wrapped)
    market_cap_usd  DOUBLE,             -- in that snapshot
    member          BOOLEAN NOT NULL,   -- in its sector's index at the day's close
    reason          VARCHAR NOT NULL,   -- member | too_young | not_ranked | low_volume | excluded: <why> | no sector | no candle
    PRIMARY KEY (date, coin)
);

-- Sector indices, one series per sector and weighting, from the sector's first day (level 100).
-- Sectors are the universe's, plus the composites BTC, ETH and Alts (all alts ex BTC/ETH).
CREATE TABLE IF NOT EXISTS marts.sector_index (
    sector          VARCHAR NOT NULL,
    date            DATE    NOT NULL,
    weighting       VARCHAR NOT NULL,   -- equal | capped (30-day dollar volume) | mcap_capped (market cap); caps 30%, monthly
    level           DOUBLE,             -- 100 on the sector's first day
    ret_1d          DOUBLE,             -- fraction; the return of the members at D-1's close
    n_constituents  INTEGER,            -- point-in-time members at D's close
    PRIMARY KEY (sector, date, weighting)
);

-- The weights behind each day's index return: ret_1d of (sector, date, weighting) is the sum of
-- weight * the member's return. They sum to 1 per sector, date and weighting (a quality check).
CREATE TABLE IF NOT EXISTS marts.sector_weights (
    sector     VARCHAR NOT NULL,
    date       DATE    NOT NULL,
    weighting  VARCHAR NOT NULL,
    symbol     VARCHAR NOT NULL,   -- the member's spot symbol, e.g. UNI/USDT
    weight     DOUBLE,             -- fraction of the sector (0.30 = 30%)
    PRIMARY KEY (sector, date, weighting, symbol)
);

-- Relative strength of each sector index (the configured weighting) vs the BTC index, and its
-- relative-rotation-graph position. Null while a rolling window warms up.
CREATE TABLE IF NOT EXISTS marts.relative_strength (
    sector          VARCHAR NOT NULL,
    date            DATE    NOT NULL,
    rs_vs_btc       DOUBLE,    -- 100 * sector level / BTC level
    rs_mom_7d_pct   DOUBLE,    -- change of rs_vs_btc over 7 days, in % (5 = +5%)
    rs_mom_30d_pct  DOUBLE,
    rs_mom_90d_pct  DOUBLE,
    rs_ratio        DOUBLE,    -- RRG x: smoothed rs over its rolling mean, 100 = at its norm
    rs_momentum     DOUBLE,    -- RRG y: rate of change of rs_ratio, 100 = flat
    quadrant        VARCHAR,   -- leading | weakening | lagging | improving
    PRIMARY KEY (sector, date)
);

-- Altcoin-season index: % of eligible alts (ex BTC, stablecoins, wrapped/staked) beating BTC over 90 days.
CREATE TABLE IF NOT EXISTS marts.altseason (
    date             DATE NOT NULL PRIMARY KEY,
    altseason_index  DOUBLE,    -- 0..100; null when fewer alts than the configured minimum are eligible
    n_eligible       INTEGER,
    n_outperforming  INTEGER,
    btc_return_pct   DOUBLE,    -- BTC's own return over the window, in %
    season           VARCHAR    -- alt_season (>= 75) | btc_season (<= 25) | neutral
);

-- Perp funding per symbol and UTC day. A positive rate is paid by longs to shorts: a short earns it.
CREATE TABLE IF NOT EXISTS marts.funding_costs (
    exchange            VARCHAR NOT NULL,
    symbol              VARCHAR NOT NULL,
    date                DATE    NOT NULL,
    settlements         INTEGER,   -- funding events that day (3 on an 8h perp)
    interval_hours      INTEGER,   -- the day's longest interval, read from the settlements' spacing
    funding_rate_sum    DOUBLE,    -- fraction of notional a 1x long paid that day
    funding_apr_pct     DOUBLE,    -- what was paid per hour of funding that day, annualised, in %
    funding_apr_7d_pct  DOUBLE,    -- the same over the trailing 7 days
    PRIMARY KEY (exchange, symbol, date)
);

-- Market phase per day, with the evidence it was read from (see pipeline/transforms/market_regime.py).
CREATE TABLE IF NOT EXISTS marts.market_regime (
    date                 DATE NOT NULL PRIMARY KEY,
    phase                VARCHAR,   -- btc_dominance | altcoin_surge | narrative_rotation | peak_consolidation | bear
    risk_mode            VARCHAR,   -- risk_on | risk_off
    raw_phase            VARCHAR,   -- the day's reading before hysteresis
    days_in_phase        INTEGER,
    funding_regime       VARCHAR,   -- negative | normal | hot (BTC 7-day funding, annualised)
    leading_sector       VARCHAR,   -- strongest platform/narrative sector by 30-day RS momentum
    btc_trend_pct        DOUBLE,    -- BTC vs its 200-day average, in %
    btc_momentum_pct     DOUBLE,    -- BTC's 30-day return, in %
    btc_volatility_pct   DOUBLE,    -- BTC's 30-day realised volatility, annualised, in %
    btc_dominance_pct    DOUBLE,
    btc_dominance_trend  DOUBLE,    -- change of dominance over 30 days, in percentage points
    altseason_index      DOUBLE,
    alts_vs_btc_pct      DOUBLE,    -- the Alts composite vs BTC over 30 days, in %
    platform_lead_pct    DOUBLE,    -- mean L1/L2/infra minus mean narrative RS momentum, in points
    tvl_growth_30d       DOUBLE,    -- fraction (0.1 = +10%)
    btc_funding_apr_pct  DOUBLE,
    missing_inputs       VARCHAR    -- evidence with no data that day, comma-separated
);
