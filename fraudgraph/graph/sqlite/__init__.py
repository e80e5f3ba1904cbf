"""Embedded identity graph on plain SQLite (the default backend): ``store`` (connection, schema,
writes), ``reads`` and ``schema`` (tables and statements)."""

from __future__ import annotations

from .schema import path_from_uri
from .store import SqliteIdentityGraph

__all__ = ["SqliteIdentityGraph", "path_from_uri"]
