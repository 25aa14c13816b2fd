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

-- Market caps as each vendor ranked them on a day: CoinMarketCap's historical listings (the first of
-- each month, dead coins included) and CoinGecko's /coins/markets (the nightly top N). `coin` is the
-- vendor's own id (CMC slug, CoinGecko id), never the ticker: tickers are not unique.
CREATE TABLE IF NOT EXISTS raw.market_caps (
    source              VARCHAR NOT NULL,   -- coinmarketcap | coingecko
    date                DATE    NOT NULL,   -- the day the snapshot describes (UTC; CMC: the end of that day)
    coin                VARCHAR NOT NULL,   -- CMC slug / CoinGecko id
    symbol              VARCHAR,            -- the vendor's ticker (upper case)
    name                VARCHAR,
    rank                INTEGER,            -- the vendor's rank (CMC's is not always in market-cap order)
    market_cap_usd      DOUBLE,
    price_usd           DOUBLE,
    volume_24h_usd      DOUBLE,
    circulating_supply  DOUBLE,
    ingested_at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source, date, coin)
);

-- CoinGecko's categories of a coin, as first seen by a nightly run: no API gives past categories,
-- so they are recorded from the day the pipeline first saw the coin on.
CREATE TABLE IF NOT EXISTS raw.coin_categories (
    source       VARCHAR NOT NULL,   -- coingecko
    coin         VARCHAR NOT NULL,   -- the vendor's id
    category     VARCHAR NOT NULL,   -- the vendor's category name, e.g. 'Layer 1 (L1)'
    first_seen   DATE    NOT NULL,   -- the day the nightly first saw it
    ingested_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source, coin, category)
);
