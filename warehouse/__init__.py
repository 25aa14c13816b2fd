"""The DuckDB warehouse: schema files, connections and transactional Arrow upserts."""

from warehouse.db import TABLES, Warehouse, WarehouseError

__all__ = ["TABLES", "Warehouse", "WarehouseError"]
