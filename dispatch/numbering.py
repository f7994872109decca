"""Work-order numbers ``YYYYMMDD-NNNNNN``: Beijing date + a daily sequence, unique under concurrent creation.

The sequence row is advanced with one atomic ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` statement: PostgreSQL
locks the day's row until the transaction ends, SQLite takes its single writer lock; two transactions never get the
same value, and a rolled-back transaction gives its value back.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from dispatch.deadlines import BEIJING
from dispatch.orm import NumberSequence


def format_number(day: str, value: int) -> str:
    return f"{day}-{value:06d}"


def next_number(session: Session, now: datetime) -> str:
    day = now.astimezone(BEIJING).strftime("%Y%m%d")
    dialect = session.get_bind().dialect.name
    if dialect in ("postgresql", "sqlite"):
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        stmt = insert(NumberSequence).values(day=day, last_value=1)
        stmt = stmt.on_conflict_do_update(
            index_elements=[NumberSequence.day], set_={"last_value": NumberSequence.last_value + 1}
        ).returning(NumberSequence.last_value)
        value = session.execute(stmt).scalar_one()
    else:  # other databases: row lock with SELECT … FOR UPDATE
        row = session.scalar(select(NumberSequence).where(NumberSequence.day == day).with_for_update())
        if row is None:
            row = NumberSequence(day=day, last_value=1)
            session.add(row)
        else:
            row.last_value += 1
        session.flush()
        value = row.last_value
    return format_number(day, value)
