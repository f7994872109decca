"""Dispatch fixtures: the catalog seeded once per database, empty work-order tables per test, a settable clock."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from core.db import session_factory
from dispatch.deadlines import BEIJING
from dispatch.service import DispatchService
from tests.dispatch.helpers import clear_work_tables, seed


class Clock:
    """A settable clock (UTC-aware); starts at a Monday 10:00 Beijing time."""

    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def set_beijing(self, *args: int) -> None:
        self.now = datetime(*args, tzinfo=BEIJING).astimezone(timezone.utc)

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@pytest.fixture(scope="session")
def seeded_engine(db_engine: Engine) -> Engine:
    return seed(db_engine)


@pytest.fixture
def session(seeded_engine: Engine) -> Iterator[Session]:
    clear_work_tables(seeded_engine)
    s = session_factory(seeded_engine)()
    yield s
    s.close()


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 23, 10, 0, tzinfo=BEIJING).astimezone(timezone.utc))


@pytest.fixture
def svc(session: Session, clock: Clock) -> DispatchService:
    return DispatchService(session, clock=clock)
