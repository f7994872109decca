"""Dispatch domain: catalog (unit types, places, units, rules, community duties), work orders, events, decisions.

Revision ID: 0002_dispatch
Revises: 0001_base
Create Date: 2026-11-22
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_dispatch"
down_revision = "0001_base"
branch_labels = ("dispatch",)
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "dispatch_unit_types",
        sa.Column("code", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("duty", sa.Text(), nullable=False),
    )
    op.create_table(
        "dispatch_places",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("district", sa.String(32), nullable=False),
        sa.Column("street", sa.String(64), nullable=False),
        sa.Column("aliases", sa.JSON(), nullable=False),
    )
    op.create_index("ix_dispatch_places_name", "dispatch_places", ["name"])
    op.create_table(
        "dispatch_units",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("unit_type", sa.String(64), sa.ForeignKey("dispatch_unit_types.code"), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("district", sa.String(32), nullable=False),
        sa.Column("street", sa.String(64), nullable=False),
        sa.Column("keywords", sa.JSON(), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_dispatch_units_type_place", "dispatch_units", ["unit_type", "district", "street"])
    op.create_table(
        "dispatch_routing_rules",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("patterns", sa.JSON(), nullable=False),
        sa.Column("keywords", sa.JSON(), nullable=False),
        sa.Column("category_l1", sa.String(32), nullable=True),
        sa.Column("category_l2", sa.String(32), nullable=True),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
    )
    op.create_index("ix_dispatch_routing_rules_kind", "dispatch_routing_rules", ["kind"])
    op.create_table(
        "dispatch_community_duties",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sa.String(64), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("item", sa.Text(), nullable=False),
        sa.Column("keywords", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "dispatch_settings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.JSON(), nullable=True),
    )
    op.create_table(
        "dispatch_number_sequences",
        sa.Column("day", sa.String(8), primary_key=True),
        sa.Column("last_value", sa.Integer(), nullable=False),
    )
    op.create_table(
        "dispatch_work_orders",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("number", sa.String(20), nullable=False, unique=True),
        sa.Column("idempotency_key", sa.String(128), nullable=True, unique=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("citizen_name", sa.String(64), nullable=True),
        sa.Column("citizen_phone", sa.String(32), nullable=True),
        sa.Column("phone_tail", sa.String(4), nullable=True),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("address", sa.String(255), nullable=True),
        sa.Column("request_type", sa.String(8), nullable=True),
        sa.Column("category_l1", sa.String(32), nullable=True),
        sa.Column("category_l2", sa.String(32), nullable=True),
        sa.Column("district", sa.String(32), nullable=False),
        sa.Column("street", sa.String(64), nullable=False),
        sa.Column("place_name", sa.String(100), nullable=False),
        sa.Column("urgency", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("disposition", sa.String(32), nullable=True),
        sa.Column("disposition_target", sa.String(64), nullable=True),
        sa.Column("routing_reason", sa.Text(), nullable=False),
        sa.Column("suggestions", sa.JSON(), nullable=False),
        sa.Column("needs_consultation", sa.Boolean(), nullable=False),
        sa.Column("repeat_of_id", sa.Integer(), sa.ForeignKey("dispatch_work_orders.id"), nullable=True),
        sa.Column("merged_into_id", sa.Integer(), sa.ForeignKey("dispatch_work_orders.id"), nullable=True),
        sa.Column("lead_unit_id", sa.Integer(), sa.ForeignKey("dispatch_units.id"), nullable=True),
        sa.Column("dispatched_at", TS, nullable=True),
        sa.Column("deadline_at", TS, nullable=True),
        sa.Column("response_due_at", TS, nullable=True),
        sa.Column("extension_count", sa.Integer(), nullable=False),
        sa.Column("accepted_at", TS, nullable=True),
        sa.Column("replied_at", TS, nullable=True),
        sa.Column("reply_text", sa.Text(), nullable=True),
        sa.Column("callback_at", TS, nullable=True),
        sa.Column("resolved", sa.Boolean(), nullable=True),
        sa.Column("satisfaction", sa.String(8), nullable=True),
        sa.Column("closed_at", TS, nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
    )
    op.create_index("ix_dispatch_work_orders_status", "dispatch_work_orders", ["status"])
    op.create_index("ix_dispatch_work_orders_status_district", "dispatch_work_orders", ["status", "district"])
    op.create_index("ix_dispatch_work_orders_phone_tail", "dispatch_work_orders", ["phone_tail"])
    op.create_index("ix_dispatch_work_orders_citizen_phone", "dispatch_work_orders", ["citizen_phone"])
    op.create_index("ix_dispatch_work_orders_lead_unit_id", "dispatch_work_orders", ["lead_unit_id"])
    op.create_index("ix_dispatch_work_orders_deadline_at", "dispatch_work_orders", ["deadline_at"])
    op.create_table(
        "dispatch_assignments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("order_id", sa.Integer(), sa.ForeignKey("dispatch_work_orders.id"), nullable=False),
        sa.Column("unit_id", sa.Integer(), sa.ForeignKey("dispatch_units.id"), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("assigned_at", TS, nullable=False),
        sa.Column("ended_at", TS, nullable=True),
        sa.Column("end_reason", sa.Text(), nullable=True),
    )
    op.create_index("ix_dispatch_assignments_order_id", "dispatch_assignments", ["order_id"])
    op.create_index("ix_dispatch_assignments_unit_id", "dispatch_assignments", ["unit_id"])
    op.create_table(
        "dispatch_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("order_id", sa.Integer(), sa.ForeignKey("dispatch_work_orders.id"), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("actor_role", sa.String(16), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=True),
        sa.Column("unit_id", sa.Integer(), sa.ForeignKey("dispatch_units.id"), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
    )
    op.create_index("ix_dispatch_events_order_id", "dispatch_events", ["order_id"])
    op.create_index("ix_dispatch_events_action_at", "dispatch_events", ["action", "at"])
    op.create_table(
        "dispatch_objections",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("order_id", sa.Integer(), sa.ForeignKey("dispatch_work_orders.id"), nullable=False),
        sa.Column("unit_id", sa.Integer(), sa.ForeignKey("dispatch_units.id"), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("reviewed_at", TS, nullable=True),
        sa.Column("reviewed_by", sa.String(64), nullable=True),
        sa.Column("review_note", sa.Text(), nullable=True),
        sa.Column("new_unit_id", sa.Integer(), sa.ForeignKey("dispatch_units.id"), nullable=True),
    )
    op.create_index("ix_dispatch_objections_order_id", "dispatch_objections", ["order_id"])
    op.create_table(
        "dispatch_decisions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("order_id", sa.Integer(), sa.ForeignKey("dispatch_work_orders.id"), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("actor_role", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("suggested", sa.JSON(), nullable=False),
        sa.Column("chosen_unit_id", sa.Integer(), sa.ForeignKey("dispatch_units.id"), nullable=False),
        sa.Column("chosen_unit_type", sa.String(64), nullable=False),
        sa.Column("assist_unit_ids", sa.JSON(), nullable=False),
        sa.Column("request_type", sa.String(8), nullable=True),
        sa.Column("category_l1", sa.String(32), nullable=True),
        sa.Column("category_l2", sa.String(32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
    )
    op.create_index("ix_dispatch_decisions_order_id", "dispatch_decisions", ["order_id"])

    # Events are append-only at the database level too: no UPDATE, whatever client writes.
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(
            """
            CREATE FUNCTION dispatch_events_append_only() RETURNS trigger AS $$
            BEGIN
                RAISE EXCEPTION 'dispatch_events is append-only';
            END;
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            "CREATE TRIGGER dispatch_events_no_update BEFORE UPDATE ON dispatch_events "
            "FOR EACH ROW EXECUTE FUNCTION dispatch_events_append_only()"
        )
    elif dialect == "sqlite":
        op.execute(
            "CREATE TRIGGER dispatch_events_no_update BEFORE UPDATE ON dispatch_events "
            "BEGIN SELECT RAISE(ABORT, 'dispatch_events is append-only'); END"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute("DROP TRIGGER IF EXISTS dispatch_events_no_update" + (" ON dispatch_events" if dialect == "postgresql" else ""))
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS dispatch_events_append_only()")
    for table in (
        "dispatch_decisions",
        "dispatch_objections",
        "dispatch_events",
        "dispatch_assignments",
        "dispatch_work_orders",
        "dispatch_number_sequences",
        "dispatch_settings",
        "dispatch_community_duties",
        "dispatch_routing_rules",
        "dispatch_units",
        "dispatch_places",
        "dispatch_unit_types",
    ):
        op.drop_table(table)
