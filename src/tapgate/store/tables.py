"""Core `Table` objects of the ORM models, for the statements on a login's hot path.

A Core statement skips the ORM's unit of work, identity map and row-to-object loading, which
made up most of a login's CPU time (see docs/benchmarks.md). Everything else uses the models.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table

from tapgate.store.models import (
    AccessTokenRow,
    AuditRow,
    AuthProfileRow,
    DeviceRow,
    LocalUserRow,
    ObjectVersionRow,
    RateEventRow,
    TransactionRow,
    UserLockRow,
)

ACCESS_TOKENS = cast(Table, AccessTokenRow.__table__)
AUDIT = cast(Table, AuditRow.__table__)
AUTH_PROFILES = cast(Table, AuthProfileRow.__table__)
DEVICES = cast(Table, DeviceRow.__table__)
LOCAL_USERS = cast(Table, LocalUserRow.__table__)
OBJECT_VERSION = cast(Table, ObjectVersionRow.__table__)
RATE_EVENTS = cast(Table, RateEventRow.__table__)
TRANSACTIONS = cast(Table, TransactionRow.__table__)
USER_LOCKS = cast(Table, UserLockRow.__table__)
