-- Evaluation: the walk-forward backtest of the recommendations (pipeline/evaluation/), side by side
-- with what a user would hold instead. Decisions of as_of D trade at D+1's open (+ execution_lag_days);
-- costs and funding as in pipeline/playbook.yaml's `backtest` section. Returns are fractions.

-- One row per strategy and day, from the day its first decision trades. Every figure of
-- marts.backtest_summary can be recomputed from these rows with SQL (see the README).
CREATE TABLE IF NOT EXISTS marts.backtest_daily (
    strategy                  VARCHAR NOT NULL,   -- playbook | playbook_unhedged | btc_hold | btc_eth_60_40 | neutral_buckets | equal_sectors
    date                      DATE    NOT NULL,
    equity                    DOUBLE,   -- USD at the day's close: cash (margin included) + spot at its close; perps settled daily
    ret                       DOUBLE,   -- equity / the day before's - 1 (first day: / the initial capital)
    turnover                  DOUBLE,   -- one-way: traded notional (spot and perps) / 2 / equity at the open
    fees                      DOUBLE,   -- USD of spot and perp fees paid that day (slippage is in the fill prices)
    funding                   DOUBLE,   -- USD: funding_received - funding_paid
    funding_paid              DOUBLE,   -- USD paid at that day's settlements (positive rate: longs pay)
    funding_received          DOUBLE,   -- USD received (positive rate: shorts receive)
    hedge_pnl                 DOUBLE,   -- USD price P&L of the perps on their underlying's spot price, slippage included
    gross_exposure            DOUBLE,   -- (spot + |perp notional|) / equity at the close
    net_exposure              DOUBLE,   -- (spot + signed perp notional) / equity at the close
    hedge_notional            DOUBLE,   -- USD: |perp notional| held at the close
    funding_missing_notional  DOUBLE,   -- USD: notional of held perps with no funding recorded that day (counted as 0)
    liquidations              INTEGER,  -- perps liquidated at that close (loss since sized beyond their margin)
    phase                     VARCHAR,  -- market phase of the decision day behind the day's trades
    PRIMARY KEY (strategy, date)
);

-- One row per strategy: the metrics of its daily returns, annualised on 365 days, risk-free 0.
CREATE TABLE IF NOT EXISTS marts.backtest_summary (
    strategy                  VARCHAR NOT NULL,
    first_date                DATE,
    last_date                 DATE,
    days                      INTEGER,
    total_return              DOUBLE,   -- last equity / initial capital - 1
    cagr                      DOUBLE,   -- (1 + total_return) ^ (365 / days) - 1
    volatility                DOUBLE,   -- std of daily ret x sqrt(365)
    sharpe                    DOUBLE,   -- mean / std of daily ret x sqrt(365), risk-free 0
    sortino                   DOUBLE,   -- mean daily ret / downside deviation x sqrt(365)
    max_drawdown              DOUBLE,   -- worst fall of equity from a previous peak (negative), initial capital included
    max_drawdown_peak         DATE,     -- the peak before the worst trough (first_date's eve: the initial capital)
    max_drawdown_trough       DATE,
    max_drawdown_recovery     DATE,     -- first day back at the peak; null: not yet
    calmar                    DOUBLE,   -- cagr / |max_drawdown|
    turnover                  DOUBLE,   -- annual one-way turnover: mean daily turnover x 365
    fees_paid                 DOUBLE,   -- USD
    funding_paid              DOUBLE,   -- USD
    funding_received          DOUBLE,   -- USD
    hedge_pnl                 DOUBLE,   -- USD
    avg_gross_exposure        DOUBLE,
    avg_net_exposure          DOUBLE,
    liquidations              INTEGER,
    funding_missing_share     DOUBLE,   -- share of the hedge notional-days with no funding recorded; null without hedges
    share_btc_dominance       DOUBLE,   -- share of the days in each phase
    share_altcoin_surge       DOUBLE,
    share_narrative_rotation  DOUBLE,
    share_peak_consolidation  DOUBLE,
    share_bear                DOUBLE,
    PRIMARY KEY (strategy)
);

-- Every fill of the backtest: what the one order engine (the user's orders' own) decided, at the
-- trade day's open with slippage, or a leaver's last close, or a liquidation's close.
CREATE TABLE IF NOT EXISTS marts.backtest_trades (
    strategy      VARCHAR NOT NULL,
    date          DATE    NOT NULL,
    instrument    VARCHAR NOT NULL,   -- spot symbol (UNI/USDT) or perp symbol (UNI/USDT:USDT)
    side          VARCHAR NOT NULL,   -- buy | sell (a perp sell opens or adds to a short)
    quantity      DOUBLE,   -- tokens (perps: of the underlying)
    price         DOUBLE,   -- the fill, slippage included
    notional_usd  DOUBLE,
    fee_usd       DOUBLE,
    reason        VARCHAR,  -- the engine's reason: sector drift, hedge line, leaver, liquidation
    PRIMARY KEY (strategy, date, instrument, side)
);

-- Where the next night's backtest resumes: each strategy's book at the close of `date` (the newest
-- day simulated) as JSON (cash with margin, token quantities, perps [quantity, mark, margin, P&L
-- since sized], each token's newest close), and a fingerprint of what it was computed from up to
-- that day (the input tables' rows, the universe, the playbook, the backtest's code). A night whose
-- inputs up to `date` give the same fingerprint simulates only the days after it; any other night
-- (a backfill, a restated candle, a new playbook) replays every day from the first.
CREATE TABLE IF NOT EXISTS marts.backtest_state (
    strategy  VARCHAR NOT NULL,
    date      DATE    NOT NULL,   -- the book's day: the newest day of marts.backtest_daily when written
    equity    DOUBLE  NOT NULL,   -- USD at that close
    inputs    VARCHAR NOT NULL,   -- fingerprint of the inputs up to `date` (see assets/evaluation.py)
    book      VARCHAR NOT NULL,   -- JSON
    PRIMARY KEY (strategy)
);

-- What survivorship was worth: each strategy's backtest on the universe as it was (point_in_time:
-- ranked by market cap, dead coins included) and on today's fixed list of survivors (fixed_list:
-- pipeline/universe.yaml, the whole chain rerun on it), over the days both cover, same costs.
-- Empty when the warehouse holds no market caps (both would be the fixed list).
CREATE TABLE IF NOT EXISTS marts.backtest_survivorship (
    strategy      VARCHAR NOT NULL,
    universe      VARCHAR NOT NULL,   -- point_in_time | fixed_list
    first_date    DATE,
    last_date     DATE,
    days          INTEGER,
    total_return  DOUBLE,
    cagr          DOUBLE,
    volatility    DOUBLE,
    sharpe        DOUBLE,
    max_drawdown  DOUBLE,
    PRIMARY KEY (strategy, universe)
);
