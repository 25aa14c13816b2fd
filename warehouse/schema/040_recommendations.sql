-- Recommendations: what the playbook (pipeline/strategy/, pipeline/playbook.yaml) makes of the marts.
-- One set per as-of day; a day whose phase is unknown or whose data failed a blocking check has none.
-- Weights are fractions of the portfolio; _pct columns are percentage points (10 = 10%).

-- The model portfolio's sector weights: the phase's bucket bands, tilted in 5 pp steps toward the
-- sectors leading on relative strength, held between the cadence's reviews.
CREATE TABLE IF NOT EXISTS marts.rotation_recommendation (
    as_of           DATE    NOT NULL,
    sector          VARCHAR NOT NULL,
    bucket          VARCHAR,   -- core | mid | speculative
    posture         VARCHAR,   -- the phase whose posture (bands) is in effect; may lag the phase (monthly review)
    current_weight  DOUBLE,    -- the model portfolio's weight the day before; null on its first day
    target_weight   DOUBLE,    -- weight to hold from this day; the sector weights of a day sum to 1
    action          VARCHAR,   -- increase | decrease | hold
    score           INTEGER,   -- quadrant, phase and risk-mode points; each point is one 5 pp step
    rationale       VARCHAR,   -- the evidence: phase, band, quadrant, RS momentum, TVL growth, funding, moves
    PRIMARY KEY (as_of, sector)
);

-- Perp positions of the model portfolio. Positive funding is paid by longs to shorts.
CREATE TABLE IF NOT EXISTS marts.hedge_recommendation (
    as_of            DATE    NOT NULL,
    instrument       VARCHAR NOT NULL,   -- ccxt perp symbol, e.g. BTC/USDT:USDT
    side             VARCHAR,   -- long | short
    notional_pct     DOUBLE,    -- position size, % of the portfolio (0: the funding rule cut it)
    leverage         DOUBLE,    -- hedges 1x by default, never above the playbook's cap (3x)
    margin_pct       DOUBLE,    -- collateral it ties up: notional_pct / leverage
    funding_apr      DOUBLE,    -- the perp's trailing 7-day funding, annualised, in %; null without data
    funding_30d_pct  DOUBLE,    -- expected funding over 30 days at that rate, % of the portfolio: + income, - cost
    strategy         VARCHAR,   -- the playbook's name, e.g. long beta, hedge major
    rationale        VARCHAR,
    PRIMARY KEY (as_of, instrument)
);

-- Orders that move the user's portfolio (ROTATION_PORTFOLIO, the example by default) to the day's
-- targets and hedges, at the day's closes. Only sectors off target by the drift tolerance trade.
-- A holding with no close that day (delisted, halted, not listed) is a `hold` line, never traded.
CREATE TABLE IF NOT EXISTS marts.portfolio_orders (
    as_of         DATE    NOT NULL,
    instrument    VARCHAR NOT NULL,   -- spot symbol (UNI/USDT) or perp symbol (UNI/USDT:USDT)
    side          VARCHAR,   -- buy | sell (a perp sell opens or adds to a short) | hold (no market that day: kept)
    quantity      DOUBLE,    -- tokens (perps: of the underlying)
    notional_usd  DOUBLE,
    price         DOUBLE,    -- the day's close (perps: the underlying's spot close); hold: the last close, null if none
    reason        VARCHAR,
    PRIMARY KEY (as_of, instrument)
);

-- Where the next night's recommendations resume: the model portfolio at the newest day with
-- evidence (its allocation: posture and since when, weights, scores, tilts and their day, the weights
-- before the posture; the hedges it holds, since when and under which posture) as JSON, and a
-- fingerprint of what it was computed from up to that day (the marts' rows, the universe, the
-- playbook, the code: see assets/resume.py). A night whose inputs give the same fingerprint computes
-- only the days after it; any other replays from the first day.
CREATE TABLE IF NOT EXISTS marts.recommendation_state (
    model   VARCHAR NOT NULL,   -- playbook
    date    DATE    NOT NULL,   -- the newest day of marts.rotation_recommendation when written
    inputs  VARCHAR NOT NULL,   -- fingerprint of the inputs up to `date`
    state   VARCHAR NOT NULL,   -- JSON
    PRIMARY KEY (model)
);
