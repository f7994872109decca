"""Editing the dispatch catalog at run time (admins): routing rules, settings; searching units.

Every change marks the rule ``origin = "admin"`` (a later seed never overwrites it) and bumps the catalog version, so
all processes reload their cached catalog on their next request.
"""
from __future__ import annotations

import re
from typing import Any

from sqlalchemy import case, or_, select
from sqlalchemy.orm import Session

from dispatch.catalog.catalog import DEFAULT_SETTINGS
from dispatch.catalog.seed import CATALOG_VERSION_KEY, FINGERPRINT_KEY, bump_catalog_version
from dispatch.errors import InvalidRequest, NotFound
from dispatch.orm import CatalogSetting, RoutingRule, Unit, UnitType, utcnow
from dispatch.proposal import Actor

RULE_KINDS = ("emergency", "legal_channel", "confidential", "out_of_scope", "harassment", "urgent", "consultation", "unit")
EMERGENCY_LINES = ("110", "119", "120", "122")
EDITABLE = ("kind", "target", "name", "reason", "patterns", "keywords", "category_l1", "category_l2", "weight", "active")


def rule_to_dict(rule: RoutingRule) -> dict:
    return {"code": rule.code, "kind": rule.kind, "target": rule.target, "name": rule.name, "reason": rule.reason,
            "patterns": rule.patterns, "keywords": rule.keywords, "category_l1": rule.category_l1,
            "category_l2": rule.category_l2, "weight": rule.weight, "active": rule.active, "origin": rule.origin,
            "updated_at": rule.updated_at.isoformat(), "updated_by": rule.updated_by}


def list_rules(session: Session, kind: str | None = None, include_inactive: bool = True) -> list[dict]:
    stmt = select(RoutingRule).order_by(RoutingRule.id)
    if kind:
        stmt = stmt.where(RoutingRule.kind == kind)
    if not include_inactive:
        stmt = stmt.where(RoutingRule.active.is_(True))
    return [rule_to_dict(r) for r in session.scalars(stmt)]


def _validate(session: Session, values: dict[str, Any]) -> None:
    kind = values.get("kind")
    if kind not in RULE_KINDS:
        raise InvalidRequest(f"规则类型须为{'、'.join(RULE_KINDS)}之一", "unknown rule kind")
    for pattern in values.get("patterns") or []:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise InvalidRequest(f"正则表达式“{pattern}”有误：{exc}", f"bad pattern {pattern!r}") from exc
    if kind == "unit":
        if session.get(UnitType, values.get("target")) is None:
            raise InvalidRequest(f"承办单位类型“{values.get('target')}”不存在", "unknown unit type")
        if not (values.get("keywords") or values.get("patterns") or values.get("category_l1")
                or values.get("category_l2")):
            raise InvalidRequest("单位类型规则须至少包含关键词、正则或诉求分类之一", "unit rule matches nothing")
        if float(values.get("weight", 1.0)) <= 0:
            raise InvalidRequest("规则权重须大于0", "weight must be > 0")
    else:
        if not (values.get("patterns") or values.get("keywords")):
            raise InvalidRequest("该类规则须至少包含一个关键词或正则表达式", "rule matches nothing")
        if kind == "emergency" and values.get("target") not in EMERGENCY_LINES:
            raise InvalidRequest("紧急事项规则的目标须为110、119、120或122", "emergency target must be a line")
        if not values.get("reason"):
            raise InvalidRequest("请填写规则理由（坐席和诉求人会看到）", "reason required")


def upsert_rule(session: Session, code: str, values: dict[str, Any], actor: Actor) -> dict:
    """Create the rule ``code`` or change the given fields of it; commits."""
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{2,64}", code or ""):
        raise InvalidRequest("规则编码须为2到64位字母、数字或_.:-", "bad rule code")
    unknown = set(values) - set(EDITABLE)
    if unknown:
        raise InvalidRequest(f"不能修改字段：{'、'.join(sorted(unknown))}", f"not editable: {sorted(unknown)}")
    rule = session.scalar(select(RoutingRule).where(RoutingRule.code == code))
    merged = ({f: getattr(rule, f) for f in EDITABLE} if rule else
              {"name": "", "reason": "", "patterns": [], "keywords": [], "category_l1": None, "category_l2": None,
               "weight": 1.0, "active": True})
    merged.update(values)
    merged["target"] = str(merged.get("target") or "")
    _validate(session, merged)
    try:
        if rule is None:
            rule = RoutingRule(code=code, **merged)
            session.add(rule)
        else:
            for k, v in merged.items():
                setattr(rule, k, v)
        rule.origin, rule.updated_at, rule.updated_by = "admin", utcnow(), actor.name
        bump_catalog_version(session)
        session.commit()
    except Exception:
        session.rollback()
        raise
    return rule_to_dict(rule)


def deactivate_rule(session: Session, code: str, actor: Actor) -> dict:
    if session.scalar(select(RoutingRule.id).where(RoutingRule.code == code)) is None:
        raise NotFound(f"规则“{code}”不存在", f"rule {code!r} not found")
    return upsert_rule(session, code, {"active": False}, actor)


def get_settings(session: Session) -> dict:
    stored = {s.key: s.value for s in session.scalars(select(CatalogSetting))
              if s.key not in (CATALOG_VERSION_KEY, FINGERPRINT_KEY)}
    return {**DEFAULT_SETTINGS, **stored}


def set_setting(session: Session, key: str, value: Any) -> dict:
    if key not in DEFAULT_SETTINGS:
        raise InvalidRequest(f"未知的设置项“{key}”，可选：{'、'.join(DEFAULT_SETTINGS)}", "unknown setting")
    expected = type(DEFAULT_SETTINGS[key])
    try:
        value = expected(value)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"设置项“{key}”的取值须为数字", "setting must be a number") from exc
    if value < 0:
        raise InvalidRequest("设置项取值不能为负数", "setting must be >= 0")
    try:
        row = session.get(CatalogSetting, key)
        if row is None:
            session.add(CatalogSetting(key=key, value=value))
        else:
            row.value = value
        bump_catalog_version(session)
        session.commit()
    except Exception:
        session.rollback()
        raise
    return get_settings(session)


def search_units(session: Session, q: str | None = None, unit_type: str | None = None, district: str | None = None,
                 limit: int = 50) -> list[dict]:
    stmt = select(Unit).where(Unit.active.is_(True))
    if q:
        stmt = stmt.where(or_(Unit.name.contains(q), Unit.code == q))
    if unit_type:
        stmt = stmt.where(Unit.unit_type == unit_type)
    if district:
        stmt = stmt.where(Unit.district == district)
    level_rank = case({"municipal": 0, "district": 1, "street": 2, "company": 3}, value=Unit.level, else_=4)
    rows = session.scalars(stmt.order_by(level_rank, Unit.id).limit(max(1, min(limit, 200))))
    return [{"code": u.code, "name": u.name, "unit_type": u.unit_type, "level": u.level, "district": u.district,
             "street": u.street} for u in rows]


def unit_types(session: Session) -> list[dict]:
    return [{"code": t.code, "name": t.name, "level": t.level, "duty": t.duty}
            for t in session.scalars(select(UnitType).order_by(UnitType.code))]
