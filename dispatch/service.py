"""The dispatch services facade, used by the HTTP API and the Rasa actions alike.

``DispatchService(session)`` wraps one SQLAlchemy session; every changing method is one transaction (committed on
success, rolled back on error) and appends events with the actor, role, action, reason and payload. Methods take and
return plain data (``dict`` with ISO-8601 Beijing-time strings), so callers need no ORM knowledge.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from core.logging import mask_pii
from dispatch import states
from dispatch.catalog.catalog import Catalog
from dispatch.deadlines import BEIJING, DeadlinePolicy, default_policy
from dispatch.errors import (
    Conflict,
    DispatchRefused,
    Forbidden,
    IllegalTransition,
    InvalidRequest,
    NotFound,
)
from dispatch.numbering import next_number
from dispatch.orm import Assignment, DispatchDecision, Event, Objection, Unit, WorkOrder, utcnow
from dispatch.proposal import (
    REQUEST_TYPES,
    SATISFACTION_LEVELS,
    SYSTEM,
    Actor,
    Intake,
    ModelProposal,
    Similarity,
)
from dispatch.rates import GROUPS, compute_rates
from dispatch.routing import (
    DISPOSITION_LABELS,
    EMERGENCY,
    INFORM_DISPOSITIONS,
    REPEAT,
    PriorOrder,
    RoutingDecision,
    route,
)

logger = logging.getLogger(__name__)

AGENT_ROLES = ("agent", "admin")
UNIT_ROLES = ("unit",)
CALLBACK_ROLES = ("agent", "admin", "bot", "system")
CREATE_ROLES = ("bot", "agent", "admin", "system", "citizen")


def iso(ts: datetime | None) -> str | None:
    return ts.astimezone(BEIJING).isoformat(timespec="seconds") if ts else None


def mask_phone(phone: str | None) -> str | None:
    if not phone:
        return None
    digits = "".join(ch for ch in phone if ch.isdigit())
    return (digits[:3] + "****" + digits[-4:]) if len(digits) >= 7 else "****"


def _tail4(phone: str | None) -> str | None:
    digits = "".join(ch for ch in (phone or "") if ch.isdigit())
    return digits[-4:] if len(digits) >= 4 else None


class DispatchService:
    """Work orders, routing, dispatch, handling, callbacks, rates — one instance per session (request)."""

    def __init__(
        self,
        session: Session,
        similarity: Similarity | None = None,
        similarity_threshold: float | None = None,
        deadlines: DeadlinePolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
    ):
        self.session = session
        self.similarity = similarity
        self.similarity_threshold = similarity_threshold
        self.deadlines = deadlines or default_policy()
        self.clock = clock

    # ------------------------------------------------------------------------------------------------ plumbing
    @property
    def catalog(self) -> Catalog:
        return Catalog.load(self.session)

    @contextmanager
    def _tx(self) -> Iterator[None]:
        try:
            yield
            self.session.commit()
        except StaleDataError as exc:
            self.session.rollback()
            raise Conflict("工单已被他人同时修改，请刷新后重试", "work order changed concurrently; reload and retry") from exc
        except Exception:
            self.session.rollback()
            raise

    def _order(self, number: str, lock: bool = False) -> WorkOrder:
        stmt = select(WorkOrder).where(WorkOrder.number == number)
        if lock and self.session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(of=WorkOrder)
        order = self.session.scalar(stmt)
        if order is None:
            raise NotFound(f"未找到工单{number}", f"work order {number} not found")
        return order

    def _unit(self, code: str) -> Unit:
        unit = self.session.scalar(select(Unit).where(Unit.code == code, Unit.active.is_(True)))
        if unit is None:
            raise NotFound(f"派单目录中没有承办单位“{code}”", f"unit {code!r} not in the catalog")
        return unit

    @staticmethod
    def _require(actor: Actor, roles: Sequence[str], what: str) -> None:
        if actor.role not in roles:
            raise Forbidden(f"当前角色无权{what}", f"role {actor.role!r} may not {what}")

    def _event(self, order: WorkOrder, actor: Actor, action: str, *, from_status: str | None = None,
               to_status: str | None = None, unit_id: int | None = None, reason: str | None = None,
               payload: dict | None = None, at: datetime | None = None) -> Event:
        ev = Event(order=order, at=at or self.clock(), actor=actor.name, actor_role=actor.role, action=action,
                   from_status=from_status, to_status=to_status, unit_id=unit_id, reason=reason, payload=payload or {})
        self.session.add(ev)
        return ev

    def _transition(self, order: WorkOrder, action: str, actor: Actor, **kw) -> Event:
        before = order.status
        after = states.check(action, before)
        order.status = after
        return self._event(order, actor, action, from_status=before, to_status=after, **kw)

    def _lead_assignment(self, order: WorkOrder) -> Assignment | None:
        return next((a for a in order.assignments if a.active and a.role == "lead"), None)

    def _require_lead_unit(self, order: WorkOrder, actor: Actor, action: str) -> Assignment:
        what = states.ACTION_LABELS.get(action, action)
        self._require(actor, UNIT_ROLES + ("admin",), what)
        if action in states.TRANSITIONS:
            states.check(action, order.status)
        lead = self._lead_assignment(order)
        if lead is None:
            raise IllegalTransition(action, order.status, states.TRANSITIONS.get(action, ((),))[0])
        if actor.role == "unit" and lead.unit.code != actor.unit_code:
            raise Forbidden(f"工单{order.number}的主办单位不是您所在单位，无权{what}",
                            f"unit {actor.unit_code!r} is not the lead unit of {order.number}")
        return lead

    # ------------------------------------------------------------------------------------------------ creation
    def _priors(self, phone: str | None, exclude_id: int | None = None) -> list[PriorOrder]:
        if not phone:
            return []
        window = int(self.catalog.settings.get("repeat_window_days", 90))
        since = self.clock() - timedelta(days=window)
        rows = self.session.scalars(
            select(WorkOrder)
            .where(WorkOrder.citizen_phone == phone, WorkOrder.status != states.MERGED,
                   WorkOrder.status != states.TRANSFERRED,
                   or_(WorkOrder.status.in_(states.OPEN_STATUSES), WorkOrder.created_at >= since))
            .order_by(WorkOrder.id.desc())
            .limit(50)
        )
        return [PriorOrder(o.number, o.content, o.district, o.street, o.status, o.created_at,
                           o.lead_unit.name if o.lead_unit else None, o.reply_text)
                for o in rows if o.id != exclude_id]

    def route(self, intake_or_number: Intake | str, proposal: ModelProposal | None = None) -> dict:
        """Routing decision for an intake (preview, nothing stored) or a registered order (stored, event ``route``)."""
        if isinstance(intake_or_number, Intake):
            decision = route(self.catalog, intake_or_number, proposal, self._priors(intake_or_number.phone),
                             self.similarity, self.similarity_threshold)
            return decision.to_dict()
        with self._tx():
            order = self._order(intake_or_number, lock=True)
            intake = self._intake_of(order)
            decision = route(self.catalog, intake, proposal, self._priors(order.citizen_phone, order.id),
                             self.similarity, self.similarity_threshold)
            if decision.disposition == REPEAT:  # re-routing a stored order never turns it into its own repeat
                decision = route(self.catalog, replace(intake, new_circumstances=True), proposal)
            self._apply_decision(order, decision)
            self._transition(order, "route", SYSTEM, reason=decision.reason, payload=self._decision_payload(decision))
        return decision.to_dict()

    @staticmethod
    def _intake_of(order: WorkOrder) -> Intake:
        return Intake(content=order.content, phone=order.citizen_phone, citizen_name=order.citizen_name,
                      request_type=order.request_type, category_l1=order.category_l1, category_l2=order.category_l2,
                      address=order.address, district=order.district or None, street=order.street or None,
                      urgency=order.urgency if order.urgency == "urgent" else None, channel=order.channel)

    @staticmethod
    def _decision_payload(decision: RoutingDecision) -> dict:
        return {"disposition": decision.disposition, "target": decision.target, "urgency": decision.urgency,
                "needs_consultation": decision.needs_consultation, "rule_hits": decision.rule_hits,
                "suggestions": [s.to_dict() for s in decision.suggestions],
                "location": {"district": decision.location.district, "street": decision.location.street}}

    def _apply_decision(self, order: WorkOrder, decision: RoutingDecision) -> None:
        order.request_type = order.request_type or decision.request_type
        order.category_l1 = order.category_l1 or decision.category_l1
        order.category_l2 = order.category_l2 or decision.category_l2
        order.district = decision.location.district or order.district or ""
        order.street = decision.location.street or order.street or ""
        order.place_name = decision.location.place_name or order.place_name or ""
        order.urgency = decision.urgency
        order.disposition = decision.disposition
        order.disposition_target = decision.target
        order.routing_reason = "；".join(r for r in (decision.reason, decision.urgency_reason,
                                                     decision.consultation_reason) if r)
        order.suggestions = [s.to_dict() for s in decision.suggestions]
        order.needs_consultation = decision.needs_consultation

    def create_work_order(self, intake: Intake, proposal: ModelProposal | None = None,
                          idempotency_key: str | None = None, actor: Actor = SYSTEM) -> dict:
        """Record a request (art. 10), route it (art. 11) and return the citizen-facing result.

        Atomic and idempotent: the same ``idempotency_key`` always returns the same order (``created`` is False on
        a replay), however often and concurrently the caller retries.
        """
        self._require(actor, CREATE_ROLES, "登记工单")
        if not intake.content or not intake.content.strip():
            raise InvalidRequest("诉求内容不能为空", "content is empty")
        if intake.request_type and intake.request_type not in REQUEST_TYPES:
            raise InvalidRequest(f"诉求类型须为{'、'.join(REQUEST_TYPES)}之一", "unknown request_type")
        if idempotency_key is not None and not (0 < len(idempotency_key) <= 128):
            raise InvalidRequest("幂等键长度须为1到128个字符", "idempotency_key must be 1..128 characters")
        last_exc: Exception | None = None
        for attempt in range(6):
            if idempotency_key:
                existing = self.session.scalar(select(WorkOrder).where(WorkOrder.idempotency_key == idempotency_key))
                if existing is not None:
                    self.session.rollback()
                    return self._creation_result(existing, created=False)
            try:
                order = self._create(intake, proposal, idempotency_key, actor)
                self.session.commit()
            except IntegrityError as exc:  # same key created concurrently, or a number race on exotic backends
                self.session.rollback()
                last_exc = exc
                continue
            except OperationalError as exc:  # SQLite: database is locked / busy snapshot
                self.session.rollback()
                last_exc = exc
                time.sleep(0.05 * (attempt + 1))
                continue
            except Exception:
                self.session.rollback()
                raise
            logger.info("work order created", extra={"number": order.number, "disposition": order.disposition,
                                                     "content": mask_pii(order.content[:80])})
            return self._creation_result(order, created=True)
        raise Conflict("登记工单失败，请稍后重试", f"could not create work order: {last_exc}")

    def _create(self, intake: Intake, proposal: ModelProposal | None, key: str | None, actor: Actor) -> WorkOrder:
        now = self.clock()
        number = next_number(self.session, now)  # first statement: takes the write lock early on SQLite
        decision = route(self.catalog, intake, proposal, self._priors(intake.phone), self.similarity,
                         self.similarity_threshold)
        order = WorkOrder(
            number=number, idempotency_key=key, created_at=now, updated_at=now, channel=intake.channel,
            citizen_name=intake.citizen_name, citizen_phone=intake.phone, phone_tail=_tail4(intake.phone),
            content=intake.content.strip(), summary=intake.summary, address=intake.address,
            request_type=intake.request_type, category_l1=intake.category_l1, category_l2=intake.category_l2,
            status=states.REGISTERED, extension_count=0, suggestions=[], needs_consultation=False, routing_reason="",
            district="", street="", place_name="", urgency="normal",
        )
        self.session.add(order)
        self._apply_decision(order, decision)
        self._event(order, actor, "create", to_status=states.REGISTERED, at=now,
                    payload={"channel": intake.channel, "idempotency_key": key,
                             "proposal": proposal.to_dict() if proposal else None})
        self._event(order, SYSTEM, "route", from_status=states.REGISTERED, to_status=states.REGISTERED,
                    reason=decision.reason, payload=self._decision_payload(decision), at=now)
        if decision.disposition == EMERGENCY:
            self._transition(order, "transfer", SYSTEM, reason=decision.reason, payload={"line": decision.target})
            order.closed_at = now
        elif decision.disposition in INFORM_DISPOSITIONS:
            self._transition(order, "inform", SYSTEM, reason=decision.reason,
                             payload={"message": decision.citizen_message})
            order.closed_at = now
        elif decision.disposition == REPEAT:
            prior = self._order(decision.repeat_of)
            # relationships, not only their ids: sessions keep objects after commit (expire_on_commit=False), and an
            # already loaded ``merged_into``/``repeat_of`` would otherwise still read None
            order.repeat_of = prior
            if decision.repeat_open:
                order.merged_into = prior
                self._transition(order, "merge", SYSTEM, reason=decision.reason, payload={"into": prior.number})
                self._event(prior, SYSTEM, "merged_in", reason=f"同一诉求人重复来电，工单{number}并入本工单",
                            payload={"from": number, "content": order.content})
            else:
                self._transition(order, "inform", SYSTEM, reason=decision.reason,
                                 payload={"message": decision.citizen_message})
            order.closed_at = now
        self.session.flush()
        order._citizen_message = decision.citizen_message  # type: ignore[attr-defined]
        return order

    def _creation_result(self, order: WorkOrder, created: bool) -> dict:
        message = getattr(order, "_citizen_message", None) or self._citizen_message(order)
        if order.status in (states.REGISTERED,):
            message = f"{message}工单号：{order.number}。"
        return {
            "number": order.number,
            "created": created,
            "status": order.status,
            "status_label": states.STATUS_LABELS[order.status],
            "disposition": order.disposition,
            "disposition_label": DISPOSITION_LABELS.get(order.disposition or "", ""),
            "target": order.disposition_target,
            "citizen_message": message,
            "reason": order.routing_reason,
            "urgency": order.urgency,
            "needs_consultation": order.needs_consultation,
            "district": order.district,
            "street": order.street,
            "request_type": order.request_type,
            "category_l1": order.category_l1,
            "category_l2": order.category_l2,
            "suggestions": order.suggestions,
            "repeat_of": order.repeat_of.number if order.repeat_of else None,
            "merged_into": order.merged_into.number if order.merged_into else None,
        }

    def _citizen_message(self, order: WorkOrder) -> str:
        """What to tell the citizen about an order, rebuilt from its stored state (idempotent replays)."""
        if order.status == states.TRANSFERRED:
            return f"您反映的情况属于紧急事项，请立即拨打{order.disposition_target}。"
        inform = next((e for e in reversed(order.events) if e.action == "inform"), None)
        if inform is not None and (inform.payload or {}).get("message"):
            return inform.payload["message"]
        if order.status == states.MERGED and order.merged_into:
            return f"您反映的问题已在办理中（工单号{order.merged_into.number}），本次诉求已并入原工单。"
        if order.disposition == "need_more_info":
            return "您的诉求已登记，请补充问题发生的具体地点（区、街道或小区）。"
        return "您的诉求已受理，我们将尽快派相关单位办理，办理结果会及时反馈给您。"

    # ------------------------------------------------------------------------------------------------ dispatch
    def _check_community(self, unit: Unit, order: WorkOrder, role: str) -> None:
        """Art. 17: only duty-list matters go to a community, and only lead-role matters as the lead."""
        if unit.unit_type != "community_committee":
            return
        text = order.content + (order.address or "")
        duties = self.catalog.duties_matching(text, "lead" if role == "lead" else None)
        if not duties:
            if role == "lead" and self.catalog.duties_matching(text, "assist"):
                raise DispatchRefused(
                    "依据条例第十七条，社区协助政府工作的事项不得交由社区作为主责单位办理，请派街道（乡镇）或主管部门主办、社区协助",
                    "art. 17: an assist-only duty may not be given to a community as lead")
            raise DispatchRefused("依据条例第十七条，该事项不在社区职责清单内，不得交由社区（村）办理",
                                  "art. 17: matter outside the community duty list")

    def _assign(self, order: WorkOrder, lead: Unit, assists: Sequence[Unit], now: datetime) -> list[Assignment]:
        units: list[tuple[Unit, str]] = [(lead, "lead")] + [(u, "assist") for u in assists]
        if lead.unit_type in ("street_office", "community_committee"):  # art. 12(1): the district supervises
            gov = self.catalog.district_government(lead.district)
            if gov is not None:
                units.append((self.session.get(Unit, gov.id), "supervise"))
        created, seen = [], set()
        for unit, role in units:
            if unit.id in seen:
                continue
            seen.add(unit.id)
            assignment = Assignment(unit_id=unit.id, unit=unit, role=role, active=True, assigned_at=now)
            order.assignments.append(assignment)  # cascades into the session
            created.append(assignment)
        order.lead_unit_id = lead.id
        order.lead_unit = lead
        return created

    def _end_assignments(self, order: WorkOrder, now: datetime, reason: str, roles: Sequence[str] | None = None) -> None:
        for a in order.assignments:
            if a.active and (roles is None or a.role in roles):
                a.active, a.ended_at, a.end_reason = False, now, reason

    def _set_deadline(self, order: WorkOrder, now: datetime) -> dict:
        limit = self.deadlines.limit_for(order.request_type, order.category_l1, order.category_l2, order.urgency)
        order.dispatched_at = now
        order.deadline_at = limit.apply(now)
        order.response_due_at = self.deadlines.response_due(now, order.urgency)
        return {"deadline": iso(order.deadline_at), "limit": limit.describe(), "limit_rule": limit.rule,
                "response_due": order.response_due_at.isoformat()}

    def _record_decision(self, order: WorkOrder, actor: Actor, kind: str, lead: Unit, assists: Sequence[Unit],
                         reason: str | None) -> DispatchDecision:
        suggested = list(order.suggestions or [])
        if kind == "confirm" and suggested and suggested[0].get("unit_code") != lead.code:
            kind = "override"
        decision = DispatchDecision(order_id=order.id, at=self.clock(), actor=actor.name, actor_role=actor.role,
                                    kind=kind, suggested=suggested, chosen_unit_id=lead.id,
                                    chosen_unit_type=lead.unit_type, assist_unit_ids=[u.id for u in assists],
                                    request_type=order.request_type, category_l1=order.category_l1,
                                    category_l2=order.category_l2, reason=reason)
        self.session.add(decision)
        return decision

    def dispatch(self, number: str, unit_code: str | None, actor: Actor, assist_unit_codes: Sequence[str] = (),
                 reason: str | None = None, request_type: str | None = None, category_l1: str | None = None,
                 category_l2: str | None = None, urgency: str | None = None) -> dict:
        """Dispatch a registered order (art. 12) to ``unit_code`` (None: the top suggestion) with a deadline (art. 13).

        Dispatching an order that is already with a unit re-dispatches it (agent override before the unit objects).
        Corrected labels (request type, categories) are stored on the order and in the dispatch decision.
        """
        self._require(actor, AGENT_ROLES, "派单")
        with self._tx():
            order = self._order(number, lock=True)
            if unit_code is None:
                if not order.suggestions:
                    raise InvalidRequest("该工单没有建议承办单位，请指定承办单位", "no suggestion to confirm; give unit_code")
                unit_code = order.suggestions[0]["unit_code"]
            lead = self._unit(unit_code)
            assists = [self._unit(c) for c in assist_unit_codes]
            if request_type is not None:
                if request_type not in REQUEST_TYPES:
                    raise InvalidRequest(f"诉求类型须为{'、'.join(REQUEST_TYPES)}之一", "unknown request_type")
                order.request_type = request_type
            order.category_l1 = category_l1 or order.category_l1
            order.category_l2 = category_l2 or order.category_l2
            if urgency in ("normal", "urgent"):
                order.urgency = urgency
            self._check_community(lead, order, "lead")
            for unit in assists:
                self._check_community(unit, order, "assist")
            now = self.clock()
            action = "dispatch" if order.status == states.REGISTERED else "redispatch"
            states.check(action, order.status)
            if action == "redispatch":
                self._end_assignments(order, now, reason or "坐席改派")
            self._assign(order, lead, assists, now)
            deadline = self._set_deadline(order, now)
            decision = self._record_decision(order, actor, "confirm" if action == "dispatch" else "override",
                                             lead, assists, reason)
            self.session.flush()
            self._transition(order, action, actor, unit_id=lead.id, reason=reason, payload={
                "lead": lead.code, "assist": [u.code for u in assists],
                "supervise": [a.unit.code for a in order.assignments if a.active and a.role == "supervise"],
                "decision": decision.kind, **deadline})
        return self.get_order(number)

    # ------------------------------------------------------------------------------------------------ units
    def accept(self, number: str, actor: Actor, note: str | None = None) -> dict:
        """The lead unit signs for the order (first responsibility, art. 14) and contacts the citizen (art. 15(1))."""
        with self._tx():
            order = self._order(number, lock=True)
            lead = self._require_lead_unit(order, actor, "accept")
            now = self.clock()
            order.accepted_at = now
            self._transition(order, "accept", actor, unit_id=lead.unit_id, reason=note,
                             payload={"on_time": bool(order.response_due_at and now <= order.response_due_at)})
        return self.get_order(number)

    def object(self, number: str, actor: Actor, reason: str) -> dict:
        """The lead unit objects to the dispatch (职责或管辖异议, arts. 12 para. 3, 14) with a reason."""
        if not reason or len(reason.strip()) < 4:
            raise InvalidRequest("提出异议须说明理由（不少于4个字）", "an objection needs a reason")
        with self._tx():
            order = self._order(number, lock=True)
            lead = self._require_lead_unit(order, actor, "object")
            rejected = self.session.scalar(select(func.count()).select_from(Objection).where(
                Objection.order_id == order.id, Objection.unit_id == lead.unit_id, Objection.status == "rejected"))
            if rejected:
                raise DispatchRefused("该单位对本工单的异议已被驳回，依据首接负责制（条例第十四条）应当办理，不得推诿",
                                      "objection already rejected; first responsibility applies")
            self.session.add(Objection(order_id=order.id, unit_id=lead.unit_id, reason=reason.strip(),
                                       status="pending", created_at=self.clock(), created_by=actor.name))
            self._transition(order, "object", actor, unit_id=lead.unit_id, reason=reason.strip())
        return self.get_order(number)

    def review_objection(self, number: str, actor: Actor, upheld: bool, note: str,
                         new_unit_code: str | None = None, assist_unit_codes: Sequence[str] = ()) -> dict:
        """Review a pending objection: upheld → re-dispatch to ``new_unit_code``; rejected → the unit must handle it."""
        self._require(actor, AGENT_ROLES, "审核派单异议")
        if not note or not note.strip():
            raise InvalidRequest("审核异议须填写审核意见", "a review needs a note")
        with self._tx():
            order = self._order(number, lock=True)
            states.check("uphold_objection" if upheld else "reject_objection", order.status)
            objection = self.session.scalar(select(Objection).where(
                Objection.order_id == order.id, Objection.status == "pending").order_by(Objection.id.desc()))
            if objection is None:
                raise IllegalTransition("uphold_objection" if upheld else "reject_objection", order.status)
            now = self.clock()
            objection.reviewed_at, objection.reviewed_by, objection.review_note = now, actor.name, note.strip()
            if not upheld:
                objection.status = "rejected"
                lead = self._lead_assignment(order)
                self._transition(order, "reject_objection", actor, unit_id=lead.unit_id if lead else None,
                                 reason=note.strip(), payload={"objection_id": objection.id})
            else:
                if not new_unit_code:
                    candidates = [s["unit_code"] for s in order.suggestions or []
                                  if s["unit_code"] != objection.unit.code]
                    if not candidates:
                        raise InvalidRequest("异议成立时须指定新的承办单位", "new_unit_code required")
                    new_unit_code = candidates[0]
                new_lead = self._unit(new_unit_code)
                if new_lead.id == objection.unit_id:
                    raise InvalidRequest("异议成立时不能改派给提出异议的单位", "cannot re-dispatch to the objecting unit")
                assists = [self._unit(c) for c in assist_unit_codes]
                self._check_community(new_lead, order, "lead")
                objection.status, objection.new_unit_id = "upheld", new_lead.id
                self._end_assignments(order, now, f"派单异议成立：{objection.reason}")
                self._assign(order, new_lead, assists, now)
                deadline = self._set_deadline(order, now)
                order.accepted_at = None
                self._record_decision(order, actor, "redispatch", new_lead, assists, f"派单异议成立：{note.strip()}")
                self.session.flush()
                self._transition(order, "uphold_objection", actor, unit_id=new_lead.id, reason=note.strip(), payload={
                    "objection_id": objection.id, "from_unit": objection.unit.code, "lead": new_lead.code,
                    "assist": [u.code for u in assists], **deadline})
        return self.get_order(number)

    def extend(self, number: str, actor: Actor, reason: str, working_days: int | None = None,
               hours: float | None = None) -> dict:
        """Extend the deadline with a reason told to the citizen and the hotline (art. 15(2))."""
        if not reason or len(reason.strip()) < 4:
            raise InvalidRequest("延期须说明理由（不少于4个字）", "an extension needs a reason")
        if (working_days is None) == (hours is None):
            raise InvalidRequest("请指定延长的工作日数或小时数（二选一）", "give working_days or hours")
        policy = self.deadlines
        if working_days is not None and not (1 <= working_days <= policy.max_extension_days):
            raise InvalidRequest(f"单次延期不得超过{policy.max_extension_days}个工作日", "too many working days")
        if hours is not None and not (0 < hours <= policy.max_extension_hours):
            raise InvalidRequest(f"单次延期不得超过{policy.max_extension_hours:g}小时", "too many hours")
        with self._tx():
            order = self._order(number, lock=True)
            if actor.role == "unit":
                self._require_lead_unit(order, actor, "extend")
            else:
                self._require(actor, AGENT_ROLES, "延长办理时限")
            states.check("extend", order.status)
            if order.extension_count >= policy.max_extensions:
                raise DispatchRefused(f"本工单已延期{order.extension_count}次，达到上限", "extension limit reached")
            from dispatch.deadlines import Limit

            old = order.deadline_at or self.clock()
            order.deadline_at = Limit(working_days=working_days, hours=hours).apply(old)
            order.extension_count += 1
            self._transition(order, "extend", actor, unit_id=order.lead_unit_id, reason=reason.strip(), payload={
                "old_deadline": iso(old), "new_deadline": iso(order.deadline_at), "working_days": working_days,
                "hours": hours, "extension_count": order.extension_count})
        return self.get_order(number)

    def reply(self, number: str, actor: Actor, text: str) -> dict:
        """The lead unit reports the result to the citizen and the hotline within the deadline (art. 15(4))."""
        if not text or len(text.strip()) < 4:
            raise InvalidRequest("办理结果不能少于4个字", "reply text too short")
        with self._tx():
            order = self._order(number, lock=True)
            lead = self._require_lead_unit(order, actor, "reply")
            now = self.clock()
            order.replied_at, order.reply_text = now, text.strip()
            late = bool(order.deadline_at and now > order.deadline_at)
            self._transition(order, "reply", actor, unit_id=lead.unit_id, reason=None,
                             payload={"text": text.strip(), "late": late})
        return self.get_order(number)

    # ------------------------------------------------------------------------------------------------ agents
    def record_callback(self, number: str, resolved: bool | None, satisfaction: str | None,
                        actor: Actor = SYSTEM, note: str | None = None) -> dict:
        """The hotline's callback after the deadline or the reply (art. 23): resolved? satisfied?"""
        self._require(actor, CALLBACK_ROLES, "回访")
        if satisfaction is not None and satisfaction not in SATISFACTION_LEVELS:
            raise InvalidRequest(f"满意度须为{'、'.join(SATISFACTION_LEVELS)}之一", "unknown satisfaction level")
        with self._tx():
            order = self._order(number, lock=True)
            now = self.clock()
            if order.status in (states.DISPATCHED, states.ACCEPTED) and not (order.deadline_at and now > order.deadline_at):
                raise IllegalTransition("callback", order.status, (states.REPLIED,))
            order.callback_at, order.resolved, order.satisfaction = now, resolved, satisfaction
            self._transition(order, "callback", actor, unit_id=order.lead_unit_id, reason=note,
                             payload={"resolved": resolved, "satisfaction": satisfaction})
        return self.get_order(number)

    def reopen(self, number: str, actor: Actor, reason: str) -> dict:
        """Send an unresolved order back to its lead unit with a fresh deadline (重办)."""
        self._require(actor, AGENT_ROLES, "重新派办")
        with self._tx():
            order = self._order(number, lock=True)
            states.check("reopen", order.status)
            lead = self._lead_assignment(order)
            if lead is None:
                raise IllegalTransition("reopen", order.status)
            now = self.clock()
            deadline = self._set_deadline(order, now)
            order.accepted_at = order.replied_at = None
            self._transition(order, "reopen", actor, unit_id=lead.unit_id, reason=reason, payload=deadline)
        return self.get_order(number)

    def close(self, number: str, actor: Actor, reason: str | None = None) -> dict:
        """Close an order: after the callback, after the reply (reason needed), or a registered one answered/informed."""
        self._require(actor, AGENT_ROLES + ("system",), "办结工单")
        with self._tx():
            order = self._order(number, lock=True)
            if order.status in (states.REGISTERED, states.REPLIED) and not (reason and reason.strip()):
                raise InvalidRequest("未经回访办结工单须说明理由", "closing without a callback needs a reason")
            if order.status == states.REGISTERED:  # handled without dispatch: answered or informed on the spot
                order.disposition = "answered"
            order.closed_at = self.clock()
            self._transition(order, "close", actor, reason=reason)
        return self.get_order(number)

    def merge(self, number: str, into_number: str, actor: Actor, reason: str) -> dict:
        """Merge a duplicate order into another open one (art. 11(3)); the duplicate's history stays."""
        self._require(actor, AGENT_ROLES, "合并工单")
        if number == into_number:
            raise InvalidRequest("不能将工单合并到自身", "cannot merge an order into itself")
        with self._tx():
            order = self._order(number, lock=True)
            target = self._order(into_number, lock=True)
            if target.status in states.FINAL_STATUSES:
                raise IllegalTransition("merge", target.status, states.OPEN_STATUSES)
            now = self.clock()
            order.merged_into, order.closed_at = target, now  # the relationship: see _create
            self._end_assignments(order, now, f"合并到工单{into_number}")
            self._transition(order, "merge", actor, reason=reason, payload={"into": into_number})
            self._event(target, actor, "merged_in", reason=reason, payload={"from": number, "content": order.content})
        return self.get_order(number)

    def comment(self, number: str, actor: Actor, text: str) -> dict:
        with self._tx():
            order = self._order(number)
            if actor.role == "unit" and not any(a.unit.code == actor.unit_code for a in order.assignments):
                raise Forbidden("您所在单位未承办该工单", "unit not assigned to this order")
            self._transition(order, "comment", actor, reason=text)
        return self.get_order(number)

    # ------------------------------------------------------------------------------------------------ reading
    def _summary(self, order: WorkOrder, now: datetime) -> dict:
        overdue = bool(order.status in states.IN_HANDLING and order.deadline_at and order.deadline_at < now)
        return {
            "number": order.number,
            "created_at": iso(order.created_at),
            "status": order.status,
            "status_label": states.STATUS_LABELS[order.status],
            "disposition": order.disposition,
            "disposition_label": DISPOSITION_LABELS.get(order.disposition or "", ""),
            "request_type": order.request_type,
            "category_l1": order.category_l1,
            "category_l2": order.category_l2,
            "district": order.district,
            "street": order.street,
            "urgency": order.urgency,
            "needs_consultation": order.needs_consultation,
            "content": order.content,
            "citizen_phone_masked": mask_phone(order.citizen_phone),
            "lead_unit": ({"code": order.lead_unit.code, "name": order.lead_unit.name}
                          if order.lead_unit else None),
            "deadline_at": iso(order.deadline_at),
            "overdue": overdue,
        }

    def get_order(self, number: str, actor: Actor | None = None) -> dict:
        """Everything about one order: fields, suggestions, assignments, objections, decisions, events."""
        order = self._order(number)
        if actor is not None and actor.role == "unit" and not any(a.unit.code == actor.unit_code
                                                                   for a in order.assignments):
            raise Forbidden("您所在单位未承办该工单", "unit not assigned to this order")
        now = self.clock()
        objections = self.session.scalars(select(Objection).where(Objection.order_id == order.id).order_by(Objection.id))
        decisions = self.session.scalars(select(DispatchDecision).where(DispatchDecision.order_id == order.id)
                                         .order_by(DispatchDecision.id))
        catalog = self.catalog
        detail = self._summary(order, now)
        detail.update({
            "citizen_name": order.citizen_name,
            "citizen_phone": order.citizen_phone,
            "address": order.address,
            "summary": order.summary,
            "channel": order.channel,
            "place_name": order.place_name,
            "routing_reason": order.routing_reason,
            "target": order.disposition_target,
            "suggestions": order.suggestions,
            "dispatched_at": iso(order.dispatched_at),
            "response_due_at": iso(order.response_due_at),
            "accepted_at": iso(order.accepted_at),
            "replied_at": iso(order.replied_at),
            "reply_text": order.reply_text,
            "extension_count": order.extension_count,
            "callback_at": iso(order.callback_at),
            "resolved": order.resolved,
            "satisfaction": order.satisfaction,
            "closed_at": iso(order.closed_at),
            "repeat_of": order.repeat_of.number if order.repeat_of else None,
            "merged_into": order.merged_into.number if order.merged_into else None,
            "assignments": [{"unit_code": a.unit.code, "unit_name": a.unit.name, "role": a.role, "active": a.active,
                             "assigned_at": iso(a.assigned_at), "ended_at": iso(a.ended_at),
                             "end_reason": a.end_reason} for a in order.assignments],
            "objections": [{"id": o.id, "unit_code": o.unit.code, "unit_name": o.unit.name, "reason": o.reason,
                            "status": o.status, "created_at": iso(o.created_at), "reviewed_by": o.reviewed_by,
                            "review_note": o.review_note} for o in objections],
            "decisions": [{"kind": d.kind, "actor": d.actor, "at": iso(d.at), "unit_code": d.chosen_unit.code,
                           "unit_name": d.chosen_unit.name, "unit_type": d.chosen_unit_type, "reason": d.reason}
                          for d in decisions],
            "events": [{"at": iso(e.at), "actor": e.actor, "actor_role": e.actor_role, "action": e.action,
                        "action_label": states.ACTION_LABELS.get(e.action, e.action), "from_status": e.from_status,
                        "to_status": e.to_status,
                        "unit": (catalog.unit_by_id(e.unit_id).name if catalog.unit_by_id(e.unit_id) else None),
                        "reason": e.reason, "payload": e.payload} for e in order.events],
        })
        return detail

    def list_queue(self, status: str | Sequence[str] | None = None, district: str | None = None,
                   unit_code: str | None = None, category_l1: str | None = None, overdue: bool | None = None,
                   needs_consultation: bool | None = None, disposition: str | None = None,
                   limit: int = 50, offset: int = 0) -> dict:
        """Agents' and units' queue with filters; newest first. ``unit_code``: orders with an active assignment."""
        now = self.clock()
        stmt = select(WorkOrder)
        if status:
            statuses = [status] if isinstance(status, str) else list(status)
            unknown = [s for s in statuses if s not in states.STATUS_LABELS]
            if unknown:
                raise InvalidRequest(f"未知的工单状态：{'、'.join(unknown)}", f"unknown status {unknown}")
            stmt = stmt.where(WorkOrder.status.in_(statuses))
        if district:
            stmt = stmt.where(WorkOrder.district == (self.catalog.places.normalise_district(district) or district))
        if unit_code:
            stmt = stmt.where(WorkOrder.id.in_(
                select(Assignment.order_id).join(Unit, Unit.id == Assignment.unit_id)
                .where(Unit.code == unit_code, Assignment.active.is_(True))))
        if category_l1:
            stmt = stmt.where(WorkOrder.category_l1 == category_l1)
        if needs_consultation is not None:
            stmt = stmt.where(WorkOrder.needs_consultation.is_(needs_consultation))
        if disposition:
            stmt = stmt.where(WorkOrder.disposition == disposition)
        overdue_clause = and_(WorkOrder.status.in_(states.IN_HANDLING), WorkOrder.deadline_at < now)
        if overdue is True:
            stmt = stmt.where(overdue_clause)
        elif overdue is False:
            stmt = stmt.where(~overdue_clause | WorkOrder.deadline_at.is_(None))
        total = self.session.scalar(select(func.count()).select_from(stmt.subquery()))
        rows = self.session.scalars(stmt.order_by(WorkOrder.id.desc()).limit(max(1, min(limit, 500))).offset(offset))
        return {"total": total, "items": [self._summary(o, now) for o in rows]}

    def overdue(self, limit: int = 200) -> list[dict]:
        """Orders past their deadline that the unit has not replied to (art. 33(2) 逾期办理)."""
        return self.list_queue(overdue=True, limit=limit)["items"]

    def citizen_status(self, number: str, phone_tail4: str) -> dict:
        """What a citizen may see of their own order: number + last 4 digits of the phone they called from.

        A wrong number and a wrong tail give the same NotFound, so numbers cannot be probed.
        """
        order = self.session.scalar(select(WorkOrder).where(WorkOrder.number == (number or "").strip()))
        tail = "".join(ch for ch in (phone_tail4 or "") if ch.isdigit())
        if order is None or len(tail) != 4 or order.phone_tail != tail:
            raise NotFound("未找到与该电话号码匹配的工单，请核对工单号和手机号后四位", "no order for this number and phone tail")
        shown = order.merged_into if order.status == states.MERGED and order.merged_into else order
        return {
            "number": order.number,
            "created_at": iso(order.created_at),
            "status": shown.status,
            "status_label": states.STATUS_LABELS[shown.status],
            "merged_into": order.merged_into.number if order.merged_into else None,
            "handling_unit": shown.lead_unit.name if shown.lead_unit else None,
            "deadline_at": iso(shown.deadline_at),
            "reply_text": shown.reply_text,
            "replied_at": iso(shown.replied_at),
            "message": self._citizen_message(order) if order.status in (states.INFORMED, states.TRANSFERRED) else None,
        }

    def counts(self) -> dict:
        """Orders per status and the number overdue now."""
        by_status = dict(self.session.execute(select(WorkOrder.status, func.count()).group_by(WorkOrder.status)).all())
        now = self.clock()
        overdue = self.session.scalar(select(func.count()).select_from(WorkOrder).where(
            WorkOrder.status.in_(states.IN_HANDLING), WorkOrder.deadline_at < now))
        return {"by_status": {s: {"label": states.STATUS_LABELS[s], "count": by_status.get(s, 0)}
                              for s in states.STATUS_LABELS},
                "total": sum(by_status.values()), "overdue": overdue}

    def rates(self, start: datetime, end: datetime, group_by: str = "unit") -> list[dict]:
        """Response, resolution and satisfaction rates (art. 31) per unit, district or category."""
        if group_by not in GROUPS:
            raise InvalidRequest("分组方式须为unit、district或category", f"group_by must be one of {GROUPS}")
        if start.tzinfo is None or end.tzinfo is None or end <= start:
            raise InvalidRequest("统计区间无效（需带时区且结束晚于开始）", "invalid period")
        return [r.to_dict() for r in compute_rates(self.session, start, end, group_by, now=self.clock())]


def export_dispatch_decisions(session: Session) -> list[dict]:
    """Training rows from agents' final dispatch choices: one per order, the latest decision wins.

    Columns match ``training_data/classifier/*.csv``: text, request_type, category_l1, category_l2, unit_type.
    Phone and ID numbers in the text are masked.
    """
    latest = (select(DispatchDecision.order_id, func.max(DispatchDecision.id).label("id"))
              .group_by(DispatchDecision.order_id).subquery())
    rows = session.execute(
        select(WorkOrder.content, DispatchDecision)
        .join(latest, latest.c.id == DispatchDecision.id)
        .join(WorkOrder, WorkOrder.id == DispatchDecision.order_id)
        .order_by(DispatchDecision.order_id)
    ).all()
    return [{"text": mask_pii(content), "request_type": d.request_type or "", "category_l1": d.category_l1 or "",
             "category_l2": d.category_l2 or "", "unit_type": d.chosen_unit_type} for content, d in rows]


__all__ = ["Actor", "DispatchService", "Intake", "ModelProposal", "export_dispatch_decisions"]
