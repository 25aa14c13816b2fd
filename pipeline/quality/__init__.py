"""Blocking data-quality checks of the raw tables: Great Expectations suites as code, run on pandas
frames converted from Polars (GX's SQL datasource fails on DuckDB, see DESIGN.md)."""

from pipeline.quality.config import QualityConfig
from pipeline.quality.report import Failure, QualityReport
from pipeline.quality.validate import TABLES, validate

__all__ = ["TABLES", "Failure", "QualityConfig", "QualityReport", "validate"]
