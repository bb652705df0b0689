"""Rows kept in memory while no other database connection commits.

Some rows that every login reads are written only through sessions (`Database.write()`) or by
other processes: access tokens, local users. Every such commit moves the database's change
stamp (`Database.change_stamp`), so a cache that empties itself when the stamp moves never
serves a row that has changed since it was read. On PostgreSQL there is no stamp and nothing
is kept.
"""

from __future__ import annotations

from typing import Generic, TypeVar

Key = TypeVar("Key")
Value = TypeVar("Value")


class StampedCache(Generic[Key, Value]):
    """Values by key, valid for one change stamp, at most `max_entries` of them."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._stamp: int | None = None
        self._entries: dict[Key, Value] = {}

    def get(self, stamp: int | None, key: Key) -> Value | None:
        if stamp is None or stamp != self._stamp:
            self._entries.clear()
            self._stamp = stamp
            return None
        return self._entries.get(key)

    def put(self, stamp: int | None, key: Key, value: Value) -> None:
        """Keep `value`; `stamp` must be the one taken before the value was read."""
        if stamp is None or stamp != self._stamp:
            return
        if len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key] = value
