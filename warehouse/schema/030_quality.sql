-- Rows the quality gate held back (or flagged) instead of deleting them: one record per row and
-- failed expectation, with the row as the source sent it. Row-level failures (NaN close, negative
-- TVL, a dominance glitch, a duplicate key) are NOT in their table; series-level findings (a gap,
-- a stale symbol) are recorded here while the row stays (kept_in_table). See pipeline/quality/.
CREATE TABLE IF NOT EXISTS raw.quarantine (
    table_name      VARCHAR NOT NULL,   -- e.g. raw.ohlcv_1d
    row_key         VARCHAR NOT NULL,   -- JSON of the key columns
    expectation     VARCHAR NOT NULL,   -- <table>.<name>, as pipeline/quality.yaml's policy names it
    gx_expectation  VARCHAR,            -- the Great Expectations type, e.g. expect_column_values_to_not_be_null
    columns         VARCHAR,            -- the columns the expectation is about
    action          VARCHAR,            -- block (the run stopped) | warn (it went on)
    kept_in_table   BOOLEAN,            -- true for series-level findings: the row is also in its table
    payload         VARCHAR NOT NULL,   -- JSON of the row (floats as text: NaN and inf survive)
    run_id          VARCHAR,            -- the Dagster run that quarantined it
    quarantined_at  TIMESTAMPTZ,
    PRIMARY KEY (table_name, row_key, expectation, payload)
);
