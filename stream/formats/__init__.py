"""Formats: rows into bytes. The only place pyarrow is imported."""
