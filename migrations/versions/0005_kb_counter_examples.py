"""Knowledge base: counter-examples per entry (questions it does not answer although they look like it).

Revision ID: 0005_kb_counter_examples
Revises: 0004_knowledge_base
Create Date: 2026-12-07
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_kb_counter_examples"
down_revision = "0004_knowledge_base"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("kb_entries") as batch:
        batch.add_column(sa.Column("counter_examples", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("kb_entries") as batch:
        batch.drop_column("counter_examples")
