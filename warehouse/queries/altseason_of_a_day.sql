-- The altcoin-season index of one day ($day), from the candles and the day's market-cap ranking:
-- of the top 50 alts by market cap (marts.universe_membership.alt_rank: raw.market_caps' newest
-- snapshot on or before the day, ranked by cap, BTC, stablecoins and wrapped assets left out) that
-- have a close on the day and 90 days before, the share that beat BTC over those 90 days.
with closes as (
    select symbol, date, close from raw.ohlcv_1d where exchange = 'binance'
),
returns as (
    select now.symbol, now.close / before.close - 1 as ret
    from closes now join closes before on before.symbol = now.symbol and before.date = now.date - 90
    where now.date = $day
),
top50 as (
    select symbol from marts.universe_membership where date = $day and alt_rank <= 50
)
select
    round(100.0 * count(*) filter (where r.ret > btc.ret) / count(*), 6) as altseason_index,
    count(*) as n_eligible
from returns r join top50 using (symbol), (select ret from returns where symbol = 'BTC/USDT') btc
