"""Knowledge base: entries, versions, unanswered questions.

Revision ID: 0004_knowledge_base
Revises: 0001_base
Create Date: 2026-11-22
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_knowledge_base"
down_revision = "0001_base"
branch_labels = ("knowledge_base",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kb_entries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("slug", sa.String(120), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("published_version", sa.Integer(), nullable=True),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("alternatives", sa.JSON(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("department", sa.String(200), nullable=False),
        sa.Column("region", sa.String(50), nullable=False),
        sa.Column("source", sa.String(300), nullable=False),
        sa.Column("effective_from", sa.Date(), nullable=True),
        sa.Column("review_by", sa.Date(), nullable=True),
        sa.Column("expires_on", sa.Date(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_kb_entries_slug", "kb_entries", ["slug"], unique=True)
    op.create_index("ix_kb_entries_status", "kb_entries", ["status"])
    op.create_table(
        "kb_entry_versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("entry_id", sa.Integer(), sa.ForeignKey("kb_entries.id", ondelete="CASCADE"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("author", sa.String(100), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("entry_id", "version", name="uq_kb_entry_versions_entry_version"),
    )
    op.create_index("ix_kb_entry_versions_entry_id", "kb_entry_versions", ["entry_id"])
    op.create_table(
        "kb_unanswered",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("best_entry_slug", sa.String(120), nullable=True),
        sa.Column("best_score", sa.Float(), nullable=True),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_entry_slug", sa.String(120), nullable=True),
    )
    op.create_index("ix_kb_unanswered_fingerprint", "kb_unanswered", ["fingerprint"], unique=True)


def downgrade() -> None:
    op.drop_table("kb_unanswered")
    op.drop_table("kb_entry_versions")
    op.drop_table("kb_entries")
