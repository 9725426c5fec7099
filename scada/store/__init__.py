# -*- test-case-name: tests.scada.test_store -*-
"""The operational store (SQLite, WAL): alarm journal and state, users, API tokens, login sessions.

``OpsStore(path, clock, reactor=None)`` opens (or creates and migrates) the
file; given the runtime's reactor it commits the alarm journal's writes once
per reactor turn.  The schema's history is :data:`scada.store.schema.MIGRATIONS`.
"""

from scada.store.ops import AlreadyExists, NotFound, OpsStore, Session, StoreError, Token, User

__all__ = ["AlreadyExists", "NotFound", "OpsStore", "Session", "StoreError", "Token", "User"]
