"""The one seam between the Rasa actions and the domain packages (dispatch, knowledge_base, classifier).

Every other module of ``actions/`` calls only the coroutines below; each one is small, so the lead can adapt a
signature in one place. Database and model work runs in a worker thread (``asyncio.to_thread``) so the services
app's event loop is never blocked. Errors of the domain (``dispatch.errors.DispatchError``) surface as
:class:`ServiceError` with the Chinese message to show the citizen.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Optional

logger = logging.getLogger(__name__)

UNKNOWN = "不详"  # slot value for "the citizen does not know" (address, district)


class ServiceError(Exception):
    """A domain error with a message fit for the citizen."""

    def __init__(self, message_zh: str, code: str = "error") -> None:
        super().__init__(message_zh)
        self.message_zh = message_zh
        self.code = code


@dataclass
class IntakeData:
    """What the intake form collected (slot values)."""

    description: str
    request_type: Optional[str] = None
    address: Optional[str] = None
    district: Optional[str] = None
    street: Optional[str] = None
    occurred_at: Optional[str] = None
    phone: Optional[str] = None
    name: Optional[str] = None
    anonymous: bool = False
    confidential: bool = False
    answered_immediately: bool = False


@dataclass
class KBAnswer:
    answered: bool
    answer: Optional[str] = None
    question: Optional[str] = None
    entry_id: Optional[str] = None
    department: Optional[str] = None
    score: Optional[float] = None
    suggestions: list = field(default_factory=list)  # [(entry_id, question, score)]
    available: bool = True  # False when the knowledge base could not be reached
    other_region: Optional[str] = None  # declined: the question is about another city or province


# ------------------------------------------------------------------------------------------------ database

_ready = False
_ready_lock = threading.Lock()


def _ensure_database() -> None:
    """Schema and dispatch catalog present (both idempotent; done once per process)."""
    global _ready
    if _ready:
        return
    with _ready_lock:
        if _ready:
            return
        from core.db import migrate, session_scope
        from dispatch.catalog.seed import seed_catalog

        migrate()
        with session_scope() as session:
            seed_catalog(session)
        _ready = True


_similarity = None
_similarity_checked = False


def repeat_similarity():
    """The embedding similarity for repeat detection (art. 11(3)), one per process, or None when no encoder is
    configured (then dispatch uses its character-bigram fallback). The model loads on the first comparison, i.e.
    only when a citizen with earlier orders files again."""
    global _similarity, _similarity_checked
    if _similarity_checked:
        return _similarity
    with _ready_lock:
        if not _similarity_checked:
            try:
                from core.config import get_settings
                from dispatch.similarity import EmbeddingSimilarity

                folder = get_settings().resolved_encoder_dir
                if (folder / "config.json").exists():
                    def encode(texts):
                        from encoder.embedder import get_embedder

                        return get_embedder().encode_queries(texts)

                    _similarity = EmbeddingSimilarity(encode)
                else:
                    logger.info("no encoder at %s: repeat detection uses the lexical fallback", folder)
            except Exception:  # repeat detection must never stop the intake
                logger.exception("embedding similarity unavailable; repeat detection uses the lexical fallback")
                _similarity = None
            _similarity_checked = True
    return _similarity


class _SafeSimilarity:
    """Wraps the embedding similarity: if the model fails at run time, that comparison falls back to the lexical one."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, a: str, b: str) -> float:
        try:
            return self.inner(a, b)
        except Exception:
            logger.exception("embedding similarity failed; lexical fallback for this comparison")
            from dispatch.routing import lexical_similarity

            # put the lexical score on the embedding scale: its own threshold maps onto the embedding threshold
            return lexical_similarity(a, b) * self.inner.threshold / 0.5


def _dispatch_call(fn):
    """Run ``fn(DispatchService)`` in one session; domain errors become ServiceError."""
    from core.db import session_scope
    from dispatch.errors import DispatchError
    from dispatch.service import DispatchService

    _ensure_database()
    similarity = repeat_similarity()
    try:
        with session_scope() as session:
            if similarity is None:
                return fn(DispatchService(session))
            return fn(DispatchService(session, similarity=_SafeSimilarity(similarity),
                                      similarity_threshold=similarity.threshold))
    except DispatchError as exc:
        raise ServiceError(exc.message_zh, getattr(exc, "code", "error")) from exc


# ------------------------------------------------------------------------------------------------ classifier


def _proposal(text: str):
    """The classifier's ModelProposal for ``text``, or None when no classifier is installed/trained."""
    try:
        from classifier.service import load_classifier
    except ImportError:
        return None
    try:
        return load_classifier().predict(text)
    except Exception:  # a missing or broken model must not stop the intake
        logger.exception("classifier prediction failed; dispatching without a proposal")
        return None


# ------------------------------------------------------------------------------------------------ start-up


def warm_up() -> dict[str, float]:
    """Load what the first citizens would otherwise wait for (seconds each): the database and catalog, the
    classifier, the knowledge base with its index and encoder, repeat detection. Never raises: a part that fails is
    logged and loads again on first use."""
    timings: dict[str, float] = {}

    def part(name: str, fn) -> None:
        started = time.perf_counter()
        try:
            fn()
        except Exception:  # noqa: BLE001 - warm-up is an optimisation only
            logger.exception("warm-up of %s failed", name)
        timings[name] = round(time.perf_counter() - started, 2)

    def knowledge_base() -> None:
        from knowledge_base.service import get_knowledge_base

        get_knowledge_base().answer("居住证怎么办理", log_unanswered=False)

    def similarity() -> None:
        compare = repeat_similarity()
        if compare is not None:
            compare("小区路灯坏了", "小区的路灯不亮")

    part("database", _ensure_database)
    part("classifier", lambda: _proposal("小区门口的路灯坏了好几天了"))
    part("knowledge_base", knowledge_base)
    part("repeat_similarity", similarity)
    logger.info("models warmed up", extra={"seconds": timings})
    return timings


# ------------------------------------------------------------------------------------------------ work orders


def _intake(data: IntakeData, request_type: Optional[str]):
    from dispatch.proposal import Intake

    notes = []
    if data.occurred_at:
        notes.append(f"发生时间：{data.occurred_at}")
    if data.anonymous:
        notes.append("诉求人匿名反映")
    elif data.confidential:
        notes.append("诉求人要求对其个人信息保密")
    return Intake(
        content=data.description,
        phone=None if data.anonymous else data.phone,
        citizen_name=None if data.anonymous else data.name,
        request_type=request_type,
        address=None if data.address in (None, UNKNOWN) else data.address,
        district=None if data.district in (None, UNKNOWN) else data.district,
        street=data.street or None,
        channel="bot",
        summary="；".join(notes) or None,
        answered_immediately=data.answered_immediately,
    )


def _expected_deadline(result: dict) -> Optional[dict]:
    """The 办理时限 that will apply once the order is dispatched (art. 13), counted from now."""
    from dispatch.deadlines import BEIJING, default_policy

    limit = default_policy().limit_for(result.get("request_type"), result.get("category_l1"),
                                       result.get("category_l2"), result.get("urgency"))
    due = limit.apply(datetime.now(BEIJING)).astimezone(BEIJING)
    return {"limit": limit.describe(), "due": due.strftime("%Y年%-m月%-d日") + (due.strftime("%H:%M") if limit.hours else "")}


def _create(data: IntakeData, idempotency_key: str) -> dict:
    from dispatch.proposal import BOT

    proposal = _proposal(data.description)
    request_type = data.request_type
    result = _dispatch_call(
        lambda svc: svc.create_work_order(_intake(data, request_type), proposal=proposal,
                                          idempotency_key=idempotency_key, actor=BOT)
    )
    if result.get("status") == "registered":
        result["deadline"] = _expected_deadline(result)
    return result


async def create_work_order(data: IntakeData, idempotency_key: str) -> dict:
    """Create (or, for a replayed key, fetch) the work order; adds ``deadline`` = {limit, due} for open orders."""
    return await asyncio.to_thread(_create, data, idempotency_key)


async def citizen_status(number: str, phone_tail4: str) -> Optional[dict]:
    """The caller's own order, or None when number and phone tail do not match (never another citizen's order)."""

    def run():
        from dispatch.errors import NotFound

        try:
            return _dispatch_call(lambda svc: svc.citizen_status(number, phone_tail4))
        except ServiceError as exc:
            if isinstance(exc.__cause__, NotFound):
                return None
            raise

    return await asyncio.to_thread(run)


async def record_callback(number: str, resolved: Optional[bool], satisfaction: Optional[str]) -> dict:
    from dispatch.proposal import BOT

    return await asyncio.to_thread(
        _dispatch_call, lambda svc: svc.record_callback(number, resolved, satisfaction, actor=BOT)
    )


# ------------------------------------------------------------------------------------------------ knowledge base


def _answer(question: str) -> KBAnswer:
    try:
        from knowledge_base.service import answer
    except ImportError:
        logger.warning("knowledge_base.service is not available")
        return KBAnswer(answered=False, available=False)
    try:
        r = answer(question)
    except Exception:
        logger.exception("knowledge base lookup failed")
        return KBAnswer(answered=False, available=False)
    return KBAnswer(
        answered=bool(r.answered),
        answer=getattr(r, "answer", None),
        question=getattr(r, "question", None),
        entry_id=None if getattr(r, "entry_id", None) is None else str(r.entry_id),
        department=getattr(r, "department", None),
        score=getattr(r, "score", None),
        suggestions=[tuple(s) for s in (getattr(r, "suggestions", None) or [])],
        other_region=getattr(r, "other_region", None),
    )


async def answer_question(question: str) -> KBAnswer:
    """Answer a consultation from the knowledge base (art. 11 para. 1, art. 30)."""
    return await asyncio.to_thread(_answer, question)


def _record_unhelpful(question: str, entry_id: str) -> None:
    from knowledge_base.service import get_knowledge_base

    get_knowledge_base().log_unhelpful(question, entry_id)


async def record_unhelpful_answer(question: str, entry_id: str) -> None:
    """The citizen said the knowledge-base answer did not help: editors see it (anonymised) with the entry used."""
    try:
        await asyncio.to_thread(_record_unhelpful, question, entry_id)
    except Exception:  # the conversation goes on; the log is for editors
        logger.exception("unhelpful knowledge-base answer could not be recorded")


def mask_phone(phone: Optional[str]) -> str:
    digits = "".join(ch for ch in (phone or "") if ch.isdigit())
    if len(digits) >= 7:
        return digits[:3] + "****" + digits[-4:]
    return "****"


def describe_status(status: dict[str, Any]) -> str:
    """Citizen-facing text for :func:`citizen_status`."""
    parts = [f"工单 {status['number']} 当前状态：{status.get('status_label') or status.get('status')}。"]
    if status.get("message"):
        parts.append(status["message"])
    if status.get("merged_into"):
        parts.append(f"该诉求已并入工单 {status['merged_into']} 一并办理。")
    if status.get("handling_unit"):
        parts.append(f"承办单位：{status['handling_unit']}。")
    if status.get("deadline_at"):
        parts.append(f"办理时限：{_pretty_time(status['deadline_at'])}前。")
    if status.get("reply_text"):
        parts.append(f"办理结果：{status['reply_text']}")
    return "".join(parts)


def _pretty_time(iso: str) -> str:
    try:
        ts = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    return ts.strftime("%Y年%-m月%-d日 %H:%M")
