"""Warehouses: Snowflake in production, DuckDB locally. Each keeps the SQL it runs."""
