"""Actors and small helpers shared by the dispatch and API tests."""
from __future__ import annotations

from dispatch.proposal import Actor

AGENT = Actor("坐席王芳", "agent")
ADMIN = Actor("管理员", "admin")
EVALUATOR = Actor("考评员", "evaluator")


def unit_actor(code: str) -> Actor:
    return Actor(f"承办人@{code}", "unit", unit_code=code)
