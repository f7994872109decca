"""Deadlines (办理时限, art. 13) in Chinese working days or, for urgent (一级响应) orders, in hours; extensions (art. 15).

The table is ``dispatch/catalog/data/deadlines.yaml``. Working days follow the official calendar of the State Council
(package ``chinesecalendar``: weekends, public holidays and the adjusted working weekends). For a year the package
does not know yet, weekends are the only non-working days.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import chinese_calendar

from dispatch.catalog import loader

BEIJING = ZoneInfo("Asia/Shanghai")
logger = logging.getLogger(__name__)
_warned_years: set[int] = set()


def is_working_day(day: date) -> bool:
    try:
        return chinese_calendar.is_workday(day)
    except NotImplementedError:  # year beyond the package's data
        if day.year not in _warned_years:
            _warned_years.add(day.year)
            logger.warning("chinesecalendar has no data for %s; counting weekends only", day.year)
        return day.weekday() < 5


def add_working_days(start: datetime, days: int) -> datetime:
    """End (23:59:59 Beijing time) of the ``days``-th working day after the Beijing date of ``start``; in UTC."""
    if days < 1:
        raise ValueError("days must be >= 1")
    day = start.astimezone(BEIJING).date()
    counted = 0
    while counted < days:
        day += timedelta(days=1)
        if is_working_day(day):
            counted += 1
    return datetime.combine(day, time(23, 59, 59), tzinfo=BEIJING).astimezone(timezone.utc)


def working_days_between(start: datetime, end: datetime) -> int:
    """Working days strictly after ``start``'s Beijing date up to and including ``end``'s (0 if end is not later)."""
    a, b = start.astimezone(BEIJING).date(), end.astimezone(BEIJING).date()
    n, day = 0, a
    while day < b:
        day += timedelta(days=1)
        if is_working_day(day):
            n += 1
    return n


@dataclass(frozen=True)
class Limit:
    working_days: int | None = None
    hours: float | None = None
    rule: str = ""

    def describe(self) -> str:
        if self.hours is not None:
            return f"{self.hours:g}小时"
        return f"{self.working_days}个工作日"

    def apply(self, start: datetime) -> datetime:
        if self.hours is not None:
            return start + timedelta(hours=self.hours)
        return add_working_days(start, int(self.working_days or 0))


class DeadlinePolicy:
    """The deadline table: which limit applies to an order, and extension limits."""

    FIELDS = ("request_type", "category_l1", "category_l2", "urgency")

    def __init__(self, config: dict):
        self.config = config
        self.default = self._limit(config.get("default") or {"working_days": 15}, "默认时限")
        self.rules = list(config.get("rules") or [])
        response = config.get("response") or {}
        self.response_hours = {"normal": float(response.get("normal_hours", 24)),
                               "urgent": float(response.get("urgent_hours", 2))}
        ext = config.get("extension") or {}
        self.max_extensions = int(ext.get("max_extensions", 2))
        self.max_extension_days = int(ext.get("max_working_days", 15))
        self.max_extension_hours = float(ext.get("max_hours", 72))

    @staticmethod
    def _limit(raw: dict, rule: str) -> Limit:
        if raw.get("hours") is not None:
            return Limit(hours=float(raw["hours"]), rule=rule)
        return Limit(working_days=int(raw["working_days"]), rule=rule)

    @classmethod
    def load(cls, path: str | Path | None = None) -> DeadlinePolicy:
        return cls(loader.deadlines_file(Path(path) if path else None))

    def limit_for(self, request_type: str | None = None, category_l1: str | None = None,
                  category_l2: str | None = None, urgency: str | None = None) -> Limit:
        values = {"request_type": request_type, "category_l1": category_l1, "category_l2": category_l2,
                  "urgency": urgency or "normal"}
        best, best_specificity = None, -1
        for rule in self.rules:
            named = [f for f in self.FIELDS if f in rule]
            if all(rule[f] == values[f] for f in named) and len(named) > best_specificity:
                best, best_specificity = rule, len(named)
        if best is None:
            return self.default
        label = "，".join(f"{best[f]}" for f in self.FIELDS if f in best)
        return self._limit(best, label)

    def response_due(self, dispatched_at: datetime, urgency: str | None) -> datetime:
        return dispatched_at + timedelta(hours=self.response_hours.get(urgency or "normal", 24))


@lru_cache
def default_policy() -> DeadlinePolicy:
    return DeadlinePolicy.load()
