"""The dispatch catalog (派单目录) in memory: units, rules, community duties, settings and the place index.

:meth:`Catalog.load` reads the catalog tables once per process and database and reuses the copy until the catalog
version (``dispatch_settings.catalog_version``, bumped by seeding and by every admin edit) changes.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import ClassVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from dispatch.catalog.places import Location, PlaceIndex
from dispatch.catalog.seed import CATALOG_VERSION_KEY
from dispatch.orm import CatalogSetting, CommunityDuty, Place, RoutingRule, Unit, UnitType

DEFAULT_SETTINGS = {
    "repeat_window_days": 90,
    "repeat_threshold": 0.5,
    "dispatch_min_confidence": 0.30,
    "model_weight": 0.6,
    "consultation_second_ratio": 0.75,
}


@dataclass(frozen=True)
class UnitInfo:
    id: int
    code: str
    name: str
    unit_type: str
    level: str
    district: str
    street: str
    keywords: tuple[str, ...] = ()
    is_default: bool = False


@dataclass(frozen=True)
class RuleInfo:
    code: str
    kind: str
    target: str
    name: str
    reason: str
    patterns: tuple[re.Pattern, ...]
    keywords: tuple[str, ...]
    category_l1: str | None
    category_l2: str | None
    weight: float

    def match_text(self, text: str) -> list[str]:
        """The surfaces of ``text`` that this rule's patterns or keywords match (empty: no match)."""
        hits = [m.group(0) for p in self.patterns for m in [p.search(text)] if m]
        hits += [k for k in self.keywords if k and k in text]
        return hits


@dataclass(frozen=True)
class DutyInfo:
    code: str
    role: str
    item: str
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class ResolvedUnit:
    unit: UnitInfo
    factor: float  # how certain the place makes this unit (1.0: exactly the unit of the request's place)
    note: str


@dataclass
class Catalog:
    version: int
    unit_type_names: dict[str, str]
    unit_type_levels: dict[str, str]
    units: dict[str, UnitInfo]
    rules: dict[str, list[RuleInfo]]
    duties: list[DutyInfo]
    settings: dict
    places: PlaceIndex
    _by_id: dict[int, UnitInfo] = field(default_factory=dict)
    _district: dict[tuple[str, str], UnitInfo] = field(default_factory=dict)
    _street: dict[tuple[str, str], UnitInfo] = field(default_factory=dict)
    _community: dict[tuple[str, str, str], UnitInfo] = field(default_factory=dict)
    _municipal: dict[str, UnitInfo] = field(default_factory=dict)
    _companies: dict[str, list[UnitInfo]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for u in self.units.values():
            self._by_id[u.id] = u
            if u.level == "district":
                self._district[(u.unit_type, u.district)] = u
            elif u.level == "street":
                self._street[(u.district, u.street)] = u
            elif u.level == "community":
                self._community[(u.district, u.street, u.name)] = u
            elif u.level == "municipal":
                self._municipal[u.unit_type] = u
            elif u.level == "company":
                self._companies.setdefault(u.unit_type, []).append(u)

    # ------------------------------------------------------------------------------------------------ loading
    _cache: ClassVar[dict[str, Catalog]] = {}  # one copy per database URL
    _lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def load(cls, session: Session) -> Catalog:
        bind = session.get_bind()
        key = bind.url.render_as_string(hide_password=True)
        row = session.get(CatalogSetting, CATALOG_VERSION_KEY)
        version = int(row.value) if row is not None else 0
        cached = cls._cache.get(key)
        if cached is not None and cached.version == version:
            return cached
        with cls._lock:
            catalog = cls._from_session(session, version)
            if not catalog.units:
                from dispatch.errors import DispatchError

                raise DispatchError("派单目录为空，请先运行目录初始化（seed_catalog）", "dispatch catalog is empty; run seed_catalog")
            cls._cache[key] = catalog
        return catalog

    @classmethod
    def _from_session(cls, session: Session, version: int) -> Catalog:
        types = list(session.scalars(select(UnitType)))
        units = {
            u.code: UnitInfo(u.id, u.code, u.name, u.unit_type, u.level, u.district, u.street, tuple(u.keywords or ()),
                             bool(u.is_default))
            for u in session.scalars(select(Unit).where(Unit.active.is_(True)))
        }
        rules: dict[str, list[RuleInfo]] = {}
        for r in session.scalars(select(RoutingRule).where(RoutingRule.active.is_(True)).order_by(RoutingRule.id)):
            rules.setdefault(r.kind, []).append(RuleInfo(
                r.code, r.kind, r.target, r.name, r.reason, tuple(re.compile(p) for p in r.patterns or ()),
                tuple(r.keywords or ()), r.category_l1, r.category_l2, float(r.weight)))
        duties = [DutyInfo(d.code, d.role, d.item, tuple(d.keywords or ()))
                  for d in session.scalars(select(CommunityDuty).where(CommunityDuty.active.is_(True)).order_by(CommunityDuty.id))]
        settings = dict(DEFAULT_SETTINGS)
        settings.update({s.key: s.value for s in session.scalars(select(CatalogSetting))})
        places = PlaceIndex(
            {"name": p.name, "kind": p.kind, "district": p.district, "street": p.street, "aliases": p.aliases or []}
            for p in session.scalars(select(Place))
        )
        return cls(version, {t.code: t.name for t in types}, {t.code: t.level for t in types}, units, rules, duties,
                   settings, places)

    @classmethod
    def invalidate(cls) -> None:
        cls._cache.clear()

    # ------------------------------------------------------------------------------------------------ lookups
    def unit(self, code: str) -> UnitInfo | None:
        return self.units.get(code)

    def unit_by_id(self, unit_id: int | None) -> UnitInfo | None:
        return self._by_id.get(unit_id) if unit_id is not None else None

    def type_name(self, code: str) -> str:
        return self.unit_type_names.get(code, code)

    def district_government(self, district: str) -> UnitInfo | None:
        return self._district.get(("district_government", district))

    def street_office(self, district: str, street: str) -> UnitInfo | None:
        return self._street.get((district, street))

    def community_unit(self, district: str, street: str, name: str) -> UnitInfo | None:
        return self._community.get((district, street, name))

    def duties_matching(self, text: str, role: str | None = None) -> list[DutyInfo]:
        return [d for d in self.duties if (role is None or d.role == role) and any(k in text for k in d.keywords)]

    def _pick_company(self, unit_type: str, text: str) -> UnitInfo | None:
        candidates = self._companies.get(unit_type, [])
        scored = [(sum(1 for k in u.keywords if k in text), u) for u in candidates]
        best = max(scored, key=lambda t: t[0], default=(0, None))
        if best[0] > 0:
            return best[1]
        return next((u for u in candidates if u.is_default), candidates[0] if candidates else None)

    def resolve(self, unit_type: str, location: Location, text: str) -> ResolvedUnit | None:
        """The concrete unit of ``unit_type`` for the request's place (None: the catalog has no such unit)."""
        level = self.unit_type_levels.get(unit_type)
        district, street = location.district, location.street
        gov = self.district_government(district) if district else None
        if unit_type in ("street_office", "property_management", "community_committee"):
            office = self.street_office(district, street) if street else None
            if unit_type == "community_committee":
                lead_duties = self.duties_matching(text, "lead")
                community = self.community_unit(district, street, location.place_name) if street else None
                if community and lead_duties:
                    return ResolvedUnit(community, 1.0, f"属社区职责清单事项“{lead_duties[0].item}”")
                if office:
                    return ResolvedUnit(office, 0.8, "社区不作为主责单位（条例第十七条），由属地街道（乡镇）牵头办理")
                return ResolvedUnit(gov, 0.5, "街道不明，派区政府协调") if gov else None
            if office:
                note = "物业服务企业不在派单目录内，由属地街道（乡镇）督促物业办理" if unit_type == "property_management" else ""
                return ResolvedUnit(office, 0.9 if unit_type == "property_management" else 1.0, note)
            if gov:
                return ResolvedUnit(gov, 0.6, "街道（乡镇）不明，派区政府协调属地办理")
            return None
        if unit_type == "district_government":
            return ResolvedUnit(gov, 1.0, "") if gov else None
        if level == "company":
            if unit_type == "power_company" and district:
                branch = self._district.get((unit_type, district))
                if branch:
                    return ResolvedUnit(branch, 1.0, "")
            company = self._pick_company(unit_type, text)
            return ResolvedUnit(company, 1.0, "") if company else None
        if level == "municipal":
            unit = self._municipal.get(unit_type)
            return ResolvedUnit(unit, 1.0, "") if unit else None
        # district-level departments
        if district:
            unit = self._district.get((unit_type, district))
            if unit:
                return ResolvedUnit(unit, 1.0, "")
            if gov:
                return ResolvedUnit(gov, 0.6, f"{district}无{self.type_name(unit_type)}，派区政府协调")
        unit = self._municipal.get(unit_type)
        if unit:
            return ResolvedUnit(unit, 0.25, "属地不明，请先向诉求人核实地址；确属全市性问题的可派市级主管部门")
        return None
