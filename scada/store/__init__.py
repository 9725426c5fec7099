# -*- test-case-name: tests.scada.test_store -*-
"""The operational store (SQLite, WAL): alarm journal and state, users, API tokens, login sessions.

``OpsStore(path, clock)`` opens (or creates and migrates) the file; the
schema's history is :data:`scada.store.schema.MIGRATIONS`.
"""

from scada.store.ops import AlreadyExists, NotFound, OpsStore, Session, StoreError, Token, User

__all__ = ["AlreadyExists", "NotFound", "OpsStore", "Session", "StoreError", "Token", "User"]
