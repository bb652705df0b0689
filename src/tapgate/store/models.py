"""Database tables. Every change to them ships as an Alembic migration in `store/migrations/`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        # SQLite stores the wall clock as text, so an offset other than UTC would shift it.
        from datetime import UTC

        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        from datetime import UTC

        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class AuthProfileRow(Base):
    __tablename__ = "auth_profiles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    # Declaration order: `enroll` and the method `push` walk auth profiles in this order.
    position: Mapped[int] = mapped_column(Integer)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Bind password, encrypted with the key file; never exported.
    secret: Mapped[str | None] = mapped_column(Text, nullable=True)


class LocalUserRow(Base):
    __tablename__ = "local_users"
    __table_args__ = (UniqueConstraint("auth_profile_id", "username_key"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    auth_profile_id: Mapped[int] = mapped_column(ForeignKey("auth_profiles.id", ondelete="CASCADE"))
    username: Mapped[str] = mapped_column(String(256))
    username_key: Mapped[str] = mapped_column(String(256))
    first_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    last_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    email: Mapped[str | None] = mapped_column(String(256), nullable=True)
    mobile: Mapped[str | None] = mapped_column(String(32), nullable=True)
    groups: Mapped[list[Any]] = mapped_column(JSON, default=list)
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    password_hash: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class PushProfileRow(Base):
    __tablename__ = "push_profiles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    position: Mapped[int] = mapped_column(Integer)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)


class PolicyRow(Base):
    __tablename__ = "policies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    push_profile: Mapped[str] = mapped_column(String(64))
    auth_profile: Mapped[str] = mapped_column(String(64))
    attribute: Mapped[str] = mapped_column(String(64))
    match_values: Mapped[list[Any]] = mapped_column(JSON)


class ApplicationRow(Base):
    __tablename__ = "applications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    methods: Mapped[list[Any]] = mapped_column(JSON)
    require_password: Mapped[bool] = mapped_column(Boolean, default=True)


class ApiClientRow(Base):
    __tablename__ = "api_clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(128))
    application: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)


class AccessTokenRow(Base):
    __tablename__ = "access_tokens"

    token_hash: Mapped[str] = mapped_column(String(128), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    application: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(index=True)


class RadiusClientRow(Base):
    __tablename__ = "radius_clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    secret: Mapped[str | None] = mapped_column(Text, nullable=True)


class DeviceRow(Base):
    __tablename__ = "devices"
    __table_args__ = (Index("ix_devices_user", "auth_profile", "user_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    auth_profile: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(256))
    username: Mapped[str] = mapped_column(String(256))
    name: Mapped[str] = mapped_column(String(128))
    platform: Mapped[str] = mapped_column(String(64))
    signing_key: Mapped[str] = mapped_column(String(128))
    agreement_key: Mapped[str] = mapped_column(String(128))
    delivery: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    enrolled_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)


class EnrollmentRow(Base):
    __tablename__ = "enrollments"
    __table_args__ = (Index("ix_enrollments_user", "auth_profile", "user_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    auth_profile: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(256))
    username: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(nullable=True)
    device_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    issued_by: Mapped[str] = mapped_column(String(128))


class TransactionRow(Base):
    __tablename__ = "transactions"
    __table_args__ = (
        Index("ix_transactions_user_status", "auth_profile", "user_id", "status"),
        Index("ix_transactions_status_expires", "status", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    application: Mapped[str] = mapped_column(String(64))
    auth_profile: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    username: Mapped[str] = mapped_column(String(256))
    push_profile: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    verification: Mapped[str] = mapped_column(String(8))
    nonce: Mapped[str] = mapped_column(String(64))
    # The number the login screen shows (number mode) or the code the phone shows (code mode),
    # hashed with the key file; neither is ever sent to a device in a challenge.
    number_hash: Mapped[str | None] = mapped_column(String(128), nullable=True)
    number_digits: Mapped[int] = mapped_column(Integer, default=0)
    code_hash: Mapped[str | None] = mapped_column(String(128), nullable=True)
    code_attempts: Mapped[int] = mapped_column(Integer, default=0)
    require_user_verification: Mapped[bool] = mapped_column(Boolean, default=False)
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None] = mapped_column(nullable=True)
    device_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(nullable=True)


class DeviceNonceRow(Base):
    """Nonces of signed device requests, kept until their timestamp window passes (anti-replay)."""

    __tablename__ = "device_nonces"

    device_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class RateEventRow(Base):
    """One counted event (push sent, failed first factor) for sliding-window rate limits."""

    __tablename__ = "rate_events"
    __table_args__ = (Index("ix_rate_events_key_at", "kind", "key", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(320))
    at: Mapped[datetime]


class UserLockRow(Base):
    """A push lock on a user after a fraud report, lifted by an administrator."""

    __tablename__ = "user_locks"

    auth_profile: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    username: Mapped[str] = mapped_column(String(256))
    reason: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]


class AuditRow(Base):
    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(index=True)
    event: Mapped[str] = mapped_column(String(32))
    username: Mapped[str | None] = mapped_column(String(256), nullable=True, index=True)
    auth_profile: Mapped[str | None] = mapped_column(String(64), nullable=True)
    application: Mapped[str | None] = mapped_column(String(64), nullable=True)
    transaction_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    device_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    actor: Mapped[str | None] = mapped_column(String(128), nullable=True)
    source_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class AdminRow(Base):
    """A console administrator: a local credential plus the device that approves their sign-in."""

    __tablename__ = "admins"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class ObjectVersionRow(Base):
    """A counter bumped by every administrative change, so each node reloads objects on the next
    request without a restart."""

    __tablename__ = "object_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)


class DeliveryProviderRow(Base):
    """Settings of one delivery provider (`relay`, `fcm`, `apns`, `webpush`); its credential is
    encrypted with the key file."""

    __tablename__ = "delivery_providers"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    secret: Mapped[str | None] = mapped_column(Text, nullable=True)


class ChallengeDeliveryRow(Base):
    """The delivery of a challenge to one device: the provider that took it, the receipt time."""

    __tablename__ = "challenge_deliveries"

    transaction_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    provider: Mapped[str | None] = mapped_column(String(16), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(nullable=True)
    received_via: Mapped[str | None] = mapped_column(String(16), nullable=True)


class LoginRequestRow(Base):
    """A front door's request key (a RADIUS client, Identifier and Request Authenticator) and
    the transaction it started, so a retransmission reaching any node joins that login."""

    __tablename__ = "login_requests"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    transaction_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The number the login screen shows (number mode), encrypted with the key file. The node
    # that receives a retransmission shows the same number from here.
    number: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(index=True)
