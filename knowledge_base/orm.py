"""Tables of the knowledge base: entries (current state), their append-only versions, unanswered questions."""
from __future__ import annotations

from datetime import date, datetime, timezone

from sqlalchemy import JSON, Date, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.db import Base


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class KBEntry(Base):
    """One knowledge entry; its content is the version numbered ``current_version``."""

    __tablename__ = "kb_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(120), unique=True, index=True)
    status: Mapped[str] = mapped_column(String(16), default="draft", index=True)  # draft | published | archived
    current_version: Mapped[int] = mapped_column(Integer, default=1)
    published_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    question: Mapped[str] = mapped_column(Text)
    alternatives: Mapped[list] = mapped_column(JSON, default=list)
    answer: Mapped[str] = mapped_column(Text)
    department: Mapped[str] = mapped_column(String(200), default="")
    region: Mapped[str] = mapped_column(String(50), default="北京市")
    source: Mapped[str] = mapped_column(String(300), default="")
    effective_from: Mapped[date | None] = mapped_column(Date, nullable=True)
    review_by: Mapped[date | None] = mapped_column(Date, nullable=True)
    expires_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    tags: Mapped[list] = mapped_column(JSON, default=list)
    # questions that look like this entry but that it does not answer (editors' near misses; never served)
    counter_examples: Mapped[list] = mapped_column(JSON, default=list, server_default="[]")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    versions: Mapped[list[KBEntryVersion]] = relationship(
        back_populates="entry", order_by="KBEntryVersion.version", cascade="all, delete-orphan"
    )


class KBEntryVersion(Base):
    """An immutable snapshot of an entry's content and status, with who made it and why."""

    __tablename__ = "kb_entry_versions"
    __table_args__ = (UniqueConstraint("entry_id", "version", name="uq_kb_entry_versions_entry_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("kb_entries.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(20))  # create | edit | publish | unpublish | archive | rollback | import
    status: Mapped[str] = mapped_column(String(16))
    content: Mapped[dict] = mapped_column(JSON)
    author: Mapped[str] = mapped_column(String(100))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    entry: Mapped[KBEntry] = relationship(back_populates="versions")


UNANSWERED_KINDS = ("declined", "unhelpful")


class KBUnanswered(Base):
    """A question the assistant could not serve well, anonymised, counted for editors: ``declined`` (no entry was
    confident enough; ``best_entry_slug`` is the best suggestion) or ``unhelpful`` (answered with ``best_entry_slug``,
    and the citizen said the answer did not help)."""

    __tablename__ = "kb_unanswered"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    kind: Mapped[str] = mapped_column(String(16), default="declined", server_default="declined", index=True)
    question: Mapped[str] = mapped_column(Text)
    count: Mapped[int] = mapped_column(Integer, default=1)
    best_entry_slug: Mapped[str | None] = mapped_column(String(120), nullable=True)
    best_score: Mapped[float | None] = mapped_column(nullable=True)
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    resolved_entry_slug: Mapped[str | None] = mapped_column(String(120), nullable=True)
