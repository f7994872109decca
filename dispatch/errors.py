"""Errors of the dispatch domain; every message is Chinese first (what an agent or citizen reads), then English."""
from __future__ import annotations


class DispatchError(Exception):
    """Base class. ``message_zh`` is shown to people, ``message_en`` goes to logs; ``code`` is stable for clients."""

    code = "dispatch_error"
    http_status = 400

    def __init__(self, message_zh: str, message_en: str = ""):
        self.message_zh = message_zh
        self.message_en = message_en or message_zh
        super().__init__(f"{message_zh} / {self.message_en}")


class NotFound(DispatchError):
    code = "not_found"
    http_status = 404


class IllegalTransition(DispatchError):
    """An action that the work order's current status does not allow (the lifecycle is a state machine)."""

    code = "illegal_transition"
    http_status = 409

    def __init__(self, action: str, status: str, allowed_from: tuple[str, ...] = ()):
        from dispatch.states import ACTION_LABELS, STATUS_LABELS

        self.action, self.status, self.allowed_from = action, status, allowed_from
        allowed_zh = "、".join(STATUS_LABELS.get(s, s) for s in allowed_from)
        zh = f"工单当前状态为“{STATUS_LABELS.get(status, status)}”，不能执行“{ACTION_LABELS.get(action, action)}”"
        en = f"action {action!r} is not allowed in status {status!r}"
        if allowed_from:
            zh += f"（仅在{allowed_zh}状态下可以）"
            en += f" (allowed from: {', '.join(allowed_from)})"
        super().__init__(zh, en)


class InvalidRequest(DispatchError):
    code = "invalid_request"
    http_status = 422


class DispatchRefused(DispatchError):
    """A dispatch the regulation forbids (e.g. art. 17: a matter outside the community duty list)."""

    code = "dispatch_refused"
    http_status = 422


class Forbidden(DispatchError):
    """The actor may not act on this order (e.g. a unit acting on an order not assigned to it)."""

    code = "forbidden"
    http_status = 403


class Conflict(DispatchError):
    """The order changed concurrently; the caller should reload and retry."""

    code = "conflict"
    http_status = 409
