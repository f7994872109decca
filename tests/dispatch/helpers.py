"""Actors and small helpers shared by the dispatch and API tests."""
from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Engine

from core.db import session_factory
from dispatch.catalog.seed import seed_catalog
from dispatch.proposal import Actor

WORK_TABLES = ("dispatch_decisions", "dispatch_objections", "dispatch_events", "dispatch_assignments",
               "dispatch_work_orders", "dispatch_number_sequences")

AGENT = Actor("坐席王芳", "agent")
ADMIN = Actor("管理员", "admin")
EVALUATOR = Actor("考评员", "evaluator")


def unit_actor(code: str) -> Actor:
    return Actor(f"承办人@{code}", "unit", unit_code=code)


def seed(engine: Engine) -> Engine:
    """Seed the dispatch catalog into a migrated database (idempotent)."""
    with session_factory(engine)() as session:
        seed_catalog(session)
    return engine


def clear_work_tables(engine: Engine) -> None:
    """Delete every work order and its history; the catalog stays."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE dispatch_work_orders SET repeat_of_id = NULL, merged_into_id = NULL"))
        for table in WORK_TABLES:
            conn.execute(text(f"DELETE FROM {table}"))
