"""Stored files: content-addressed on a local path or an fsspec URL.

Touches files, never the database (no `db`, no SQLAlchemy); imports only `itemsheet.sheet`.
"""
