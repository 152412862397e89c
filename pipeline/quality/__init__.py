"""Data-quality checks, schema validation and month-by-month backfill of the built targets."""
