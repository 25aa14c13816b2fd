"""Blocking data-quality checks of the raw tables: Great Expectations suites as code, run on pandas
frames converted from Polars. GX's SQL datasource on DuckDB fails every expectation (it reads the
results after its pooled connection has closed), and the pandas path is fast: 1M rows in 0.5 s."""

from pipeline.quality.config import QualityConfig
from pipeline.quality.report import Failure, QualityReport
from pipeline.quality.validate import TABLES, validate

__all__ = ["TABLES", "Failure", "QualityConfig", "QualityReport", "validate"]
