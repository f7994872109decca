"""What callers hand to dispatch: the intake (诉求要素, art. 10) and the classifier's proposal.

The classifier (``classifier/``) produces exactly :class:`ModelProposal`; dispatch never imports a model.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

REQUEST_TYPES = ("咨询", "求助", "投诉", "举报", "建议", "表扬")
SATISFACTION_LEVELS = ("满意", "基本满意", "不满意")

Similarity = Callable[[str, str], float]


@dataclass(frozen=True)
class Scored:
    """One label with its probability (0–1) and an optional human-readable reason (e.g. top keywords)."""

    label: str
    prob: float
    reason: str = ""


@dataclass(frozen=True)
class ModelProposal:
    """The classifier's ranked labels for one request (each list sorted by ``prob``, best first).

    ``request_type``: 咨询/求助/投诉/举报/建议/表扬; ``category_l1``/``category_l2``: the category taxonomy;
    ``unit_type``: codes of ``dispatch/catalog/unit_types.yaml``. Lists may be empty when a head is unavailable.
    """

    request_type: list[Scored] = field(default_factory=list)
    category_l1: list[Scored] = field(default_factory=list)
    category_l2: list[Scored] = field(default_factory=list)
    unit_type: list[Scored] = field(default_factory=list)
    model_version: str = ""

    @staticmethod
    def top(items: list[Scored]) -> Scored | None:
        return max(items, key=lambda s: s.prob) if items else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ModelProposal | None:
        if not data:
            return None

        def scored(items) -> list[Scored]:
            return [s if isinstance(s, Scored) else Scored(str(s["label"]), float(s["prob"]), str(s.get("reason") or ""))
                    for s in items or []]

        return cls(scored(data.get("request_type")), scored(data.get("category_l1")),
                   scored(data.get("category_l2")), scored(data.get("unit_type")), str(data.get("model_version") or ""))


@dataclass
class Intake:
    """A citizen's request as recorded by the bot or an agent (art. 10).

    ``content`` is the citizen's words (or the agent's record); the other fields are what is known so far — leave
    unknown ones ``None`` and the classifier's proposal and the place resolver fill them in.
    """

    content: str
    phone: str | None = None
    citizen_name: str | None = None
    request_type: str | None = None
    category_l1: str | None = None
    category_l2: str | None = None
    address: str | None = None
    district: str | None = None
    street: str | None = None
    urgency: str | None = None  # "urgent" forces 一级响应; None lets the rules decide
    channel: str = "bot"  # bot | phone | web | app | agent
    summary: str | None = None
    answered_immediately: bool = False  # art. 11 para. 1: a consultation answered on the spot (e.g. from the KB)
    new_circumstances: bool = False  # art. 11(3): the citizen brings a new situation or reason → not a repeat

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Actor:
    """Who acts: a name and one of the roles citizen/agent/unit/editor/evaluator/admin/system/bot.

    A ``unit`` actor carries the code of the unit it acts for; dispatch refuses it on orders not assigned to that unit.
    """

    name: str
    role: str
    unit_code: str | None = None


SYSTEM = Actor("system", "system")
BOT = Actor("12345助手", "bot")
