-- Raw tables: what the sources said, one row per key, upserted (a re-fetch replaces the row).
-- `source` says where a row came from: the endpoint, and `@replay:<dataset>` when it was replayed
-- (`@replay:synthetic` rows are a generated market, not real prices).
CREATE SCHEMA IF NOT EXISTS raw;

-- Daily spot candles (UTC days), closed candles only. Prices in the quote currency (USDT),
-- volume in base units.
CREATE TABLE IF NOT EXISTS raw.ohlcv_1d (
    exchange     VARCHAR NOT NULL,   -- ccxt exchange id, e.g. binance
    symbol       VARCHAR NOT NULL,   -- ccxt spot symbol, e.g. BTC/USDT
    date         DATE    NOT NULL,   -- UTC day the candle opened
    open         DOUBLE,
    high         DOUBLE,
    low          DOUBLE,
    close        DOUBLE,
    volume       DOUBLE,             -- base units
    source       VARCHAR NOT NULL,
    ingested_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (exchange, symbol, date)
);

-- Perp funding events. A positive rate is paid by longs to shorts; the rate is per interval.
CREATE TABLE IF NOT EXISTS raw.funding_rates (
    exchange        VARCHAR NOT NULL,      -- ccxt exchange id, e.g. binanceusdm
    symbol          VARCHAR NOT NULL,      -- ccxt perp symbol, e.g. BTC/USDT:USDT
    funding_time    TIMESTAMPTZ NOT NULL,
    funding_rate    DOUBLE,                -- fraction per interval: 0.0001 = 0.01%
    mark_price      DOUBLE,
    interval_hours  INTEGER,               -- the symbol's funding interval when fetched (8 by default)
    source          VARCHAR NOT NULL,
    ingested_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (exchange, symbol, funding_time)
);

-- DeFi total value locked, daily (UTC), from DefiLlama.
CREATE TABLE IF NOT EXISTS raw.defi_tvl (
    scope        VARCHAR NOT NULL,   -- total | chain | protocol
    name         VARCHAR NOT NULL,   -- 'all' for total; chain name (lower case); protocol slug
    date         DATE    NOT NULL,
    tvl_usd      DOUBLE,
    source       VARCHAR NOT NULL,
    ingested_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (scope, name, date)
);

-- BTC share of the whole crypto market cap, daily, in percentage points (57.1 = 57.1%).
CREATE TABLE IF NOT EXISTS raw.btc_dominance (
    date                  DATE NOT NULL PRIMARY KEY,
    btc_dominance_pct     DOUBLE,
    total_market_cap_usd  DOUBLE,
    source                VARCHAR NOT NULL,   -- coingecko:global (snapshot) or coingecko:market_cap_chart (history)
    ingested_at           TIMESTAMPTZ NOT NULL
);
