"""The DuckDB warehouse: schema files, connections and transactional Arrow upserts."""

from warehouse.db import TABLES, Warehouse, WarehouseBusy, WarehouseError

__all__ = ["TABLES", "Warehouse", "WarehouseBusy", "WarehouseError"]
