"""Tables of the dispatch domain (SQLAlchemy 2 typed mappings on ``core.db.Base``).

Schema changes go through ``migrations/versions/0002_dispatch.py`` (branch ``dispatch``); keep both in step.
All timestamps are stored in UTC and read back timezone-aware (:class:`UTCDateTime`), on SQLite and PostgreSQL alike.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    event,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from core.db import Base


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps naive UTC text, PostgreSQL ``timestamptz``)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column; use timezone-aware datetimes")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


# ---------------------------------------------------------------------------------------------------------- catalog


class UnitType(Base):
    """A handling-unit type (承办单位类型), from ``dispatch/catalog/unit_types.yaml``."""

    __tablename__ = "dispatch_unit_types"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    level: Mapped[str] = mapped_column(String(16))
    duty: Mapped[str] = mapped_column(Text, default="")


class Place(Base):
    """A Beijing place: district, street/township, community/village or landmark (see ``catalog/gazetteer_data.py``)."""

    __tablename__ = "dispatch_places"
    __table_args__ = (Index("ix_dispatch_places_name", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), default="")
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    district: Mapped[str] = mapped_column(String(32))
    street: Mapped[str] = mapped_column(String(64), default="")
    aliases: Mapped[list[str]] = mapped_column(JSON, default=list)


class Unit(Base):
    """A concrete handling unit (承办单位) of the dispatch catalog."""

    __tablename__ = "dispatch_units"
    __table_args__ = (Index("ix_dispatch_units_type_place", "unit_type", "district", "street"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    unit_type: Mapped[str] = mapped_column(ForeignKey("dispatch_unit_types.code"))
    level: Mapped[str] = mapped_column(String(16))  # municipal | district | street | community | company
    district: Mapped[str] = mapped_column(String(32), default="")
    street: Mapped[str] = mapped_column(String(64), default="")
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class RoutingRule(Base):
    """An editable dispatch rule (emergency pattern, legal channel, unit-type keyword, …); see routing_rules.yaml."""

    __tablename__ = "dispatch_routing_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    target: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    patterns: Mapped[list[str]] = mapped_column(JSON, default=list)
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    category_l1: Mapped[str | None] = mapped_column(String(32), nullable=True)
    category_l2: Mapped[str | None] = mapped_column(String(32), nullable=True)
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    origin: Mapped[str] = mapped_column(String(16), default="seed")  # seed | admin
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(64), default="system")


class CommunityDuty(Base):
    """One item of the community duty list (社区职责清单, art. 17)."""

    __tablename__ = "dispatch_community_duties"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # lead | assist
    item: Mapped[str] = mapped_column(Text)
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class CatalogSetting(Base):
    """Key/value settings of the catalog (the ``settings`` block of routing_rules.yaml, editable by admins)."""

    __tablename__ = "dispatch_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON, nullable=True)


# ------------------------------------------------------------------------------------------------------ work orders


class NumberSequence(Base):
    """The daily sequence behind work-order numbers (``YYYYMMDD-NNNNNN``), advanced with an atomic upsert."""

    __tablename__ = "dispatch_number_sequences"

    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    last_value: Mapped[int] = mapped_column(Integer)


class WorkOrder(Base):
    """A citizen request (诉求工单, art. 10) and where it stands."""

    __tablename__ = "dispatch_work_orders"
    __table_args__ = (
        Index("ix_dispatch_work_orders_status_district", "status", "district"),
        Index("ix_dispatch_work_orders_phone_tail", "phone_tail"),
        Index("ix_dispatch_work_orders_citizen_phone", "citizen_phone"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(128), unique=True, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    channel: Mapped[str] = mapped_column(String(16), default="bot")
    citizen_name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    citizen_phone: Mapped[str | None] = mapped_column(String(32), nullable=True)
    phone_tail: Mapped[str | None] = mapped_column(String(4), nullable=True)
    content: Mapped[str] = mapped_column(Text)
    summary: Mapped[str | None] = mapped_column(Text, nullable=True)
    address: Mapped[str | None] = mapped_column(String(255), nullable=True)
    request_type: Mapped[str | None] = mapped_column(String(8), nullable=True)
    category_l1: Mapped[str | None] = mapped_column(String(32), nullable=True)
    category_l2: Mapped[str | None] = mapped_column(String(32), nullable=True)
    district: Mapped[str] = mapped_column(String(32), default="")
    street: Mapped[str] = mapped_column(String(64), default="")
    place_name: Mapped[str] = mapped_column(String(100), default="")
    urgency: Mapped[str] = mapped_column(String(8), default="normal")  # normal | urgent (一级响应)
    status: Mapped[str] = mapped_column(String(16), index=True)
    disposition: Mapped[str | None] = mapped_column(String(32), nullable=True)
    disposition_target: Mapped[str | None] = mapped_column(String(64), nullable=True)
    routing_reason: Mapped[str] = mapped_column(Text, default="")
    suggestions: Mapped[list[dict]] = mapped_column(JSON, default=list)
    needs_consultation: Mapped[bool] = mapped_column(Boolean, default=False)
    repeat_of_id: Mapped[int | None] = mapped_column(ForeignKey("dispatch_work_orders.id"), nullable=True)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("dispatch_work_orders.id"), nullable=True)
    lead_unit_id: Mapped[int | None] = mapped_column(ForeignKey("dispatch_units.id"), nullable=True, index=True)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    response_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    extension_count: Mapped[int] = mapped_column(Integer, default=0)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reply_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    callback_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    satisfaction: Mapped[str | None] = mapped_column(String(8), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}

    lead_unit: Mapped[Unit | None] = relationship(foreign_keys=[lead_unit_id], lazy="joined")
    assignments: Mapped[list[Assignment]] = relationship(
        back_populates="order", order_by="Assignment.id", cascade="all, delete-orphan"
    )
    events: Mapped[list[Event]] = relationship(back_populates="order", order_by="Event.id")
    repeat_of: Mapped[WorkOrder | None] = relationship(remote_side=[id], foreign_keys=[repeat_of_id])
    merged_into: Mapped[WorkOrder | None] = relationship(remote_side=[id], foreign_keys=[merged_into_id])


class Assignment(Base):
    """A unit's part in an order: lead (首接/主办, art. 14), assist (配合), supervise (区政府督促, art. 12(1))."""

    __tablename__ = "dispatch_assignments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("dispatch_work_orders.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("dispatch_units.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))  # lead | assist | supervise | coordinate
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    end_reason: Mapped[str | None] = mapped_column(Text, nullable=True)

    order: Mapped[WorkOrder] = relationship(back_populates="assignments")
    unit: Mapped[Unit] = relationship(lazy="joined")


class Event(Base):
    """Append-only history of an order: who did what, in which role, why, when (never updated or deleted)."""

    __tablename__ = "dispatch_events"
    __table_args__ = (Index("ix_dispatch_events_action_at", "action", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("dispatch_work_orders.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    actor_role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("dispatch_units.id"), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    payload: Mapped[dict] = mapped_column(JSON, default=dict)

    order: Mapped[WorkOrder] = relationship(back_populates="events")


class Objection(Base):
    """A unit's objection to a dispatch (派单异议, arts. 12 para. 3 and 14) and its review."""

    __tablename__ = "dispatch_objections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("dispatch_work_orders.id"), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("dispatch_units.id"))
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | upheld | rejected
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    reviewed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    review_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    new_unit_id: Mapped[int | None] = mapped_column(ForeignKey("dispatch_units.id"), nullable=True)

    unit: Mapped[Unit] = relationship(foreign_keys=[unit_id], lazy="joined")


class DispatchDecision(Base):
    """What an agent chose against what was suggested (派单决定); the source of classifier training rows."""

    __tablename__ = "dispatch_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("dispatch_work_orders.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    actor_role: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))  # confirm | override | redispatch
    suggested: Mapped[list[dict]] = mapped_column(JSON, default=list)
    chosen_unit_id: Mapped[int] = mapped_column(ForeignKey("dispatch_units.id"))
    chosen_unit_type: Mapped[str] = mapped_column(String(64))
    assist_unit_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    request_type: Mapped[str | None] = mapped_column(String(8), nullable=True)
    category_l1: Mapped[str | None] = mapped_column(String(32), nullable=True)
    category_l2: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)

    chosen_unit: Mapped[Unit] = relationship(lazy="joined")


@event.listens_for(Session, "before_flush")
def _events_are_append_only(session: Session, _ctx, _instances) -> None:
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, Event) and (obj in session.deleted or session.is_modified(obj)):
            raise PermissionError("dispatch_events is append-only: events are never updated or deleted")
