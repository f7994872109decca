"""Knowledge base: the questions log also keeps answers citizens said did not help (kind ``unhelpful``).

Revision ID: 0006_kb_unhelpful_answers
Revises: 0005_kb_counter_examples
Create Date: 2026-12-07
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_kb_unhelpful_answers"
down_revision = "0005_kb_counter_examples"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("kb_unanswered") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="declined"))
        batch.create_index("ix_kb_unanswered_kind", ["kind"])


def downgrade() -> None:
    with op.batch_alter_table("kb_unanswered") as batch:
        batch.drop_index("ix_kb_unanswered_kind")
        batch.drop_column("kind")
