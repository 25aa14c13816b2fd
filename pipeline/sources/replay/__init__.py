"""The offline replay of the public APIs: a dataset folder served over local HTTP with a clock.

`ReplayServer(load_dataset(path))` answers the real paths of Binance, Bybit, DefiLlama and
CoinGecko, so sources run unchanged against it; `FaultRule`s make it misbehave on purpose.
"""

from pipeline.sources.replay.dataset import Dataset, DatasetError, load_dataset
from pipeline.sources.replay.faults import FaultPlan, FaultRule
from pipeline.sources.replay.server import ReplayServer, RequestRecord

__all__ = [
    "Dataset",
    "DatasetError",
    "FaultPlan",
    "FaultRule",
    "ReplayServer",
    "RequestRecord",
    "load_dataset",
]
