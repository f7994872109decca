"""The dispatch catalog (派单目录, art. 11 para. 3): places, units, rules; seeding is idempotent."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select

from core.db import Base
from dispatch.catalog import gazetteer_data
from dispatch.catalog.catalog import Catalog
from dispatch.catalog.places import PlaceIndex, load_gazetteer, node_modules_dir
from dispatch.catalog.seed import seed_catalog
from dispatch.orm import RoutingRule, Unit

REQUIRED_LANDMARKS = ["望京", "回龙观", "天通苑", "中关村", "亦庄", "国贸", "双井", "五道口", "西二旗", "上地", "酒仙桥", "三里屯",
                      "大望路", "通州北苑", "梨园", "宋家庄", "方庄", "大红门", "卢沟桥", "鲁谷", "苹果园", "良乡", "长阳", "沙河",
                      "北七家", "后沙峪", "天竺", "马驹桥", "西红门", "黄村", "旧宫"]


@pytest.fixture(scope="module")
def places() -> list[dict]:
    return load_gazetteer()


@pytest.fixture(scope="module")
def index(places) -> PlaceIndex:
    return PlaceIndex(places)


def test_gazetteer_has_beijing_16_districts_and_349_streets(places):
    districts = [p for p in places if p["kind"] == "district"]
    streets = [p for p in places if p["kind"] == "street"]
    assert len(districts) == 16 and {"朝阳区", "海淀区", "延庆区"} <= {p["name"] for p in districts}
    assert len(streets) == 349
    assert {"name": "望京街道", "kind": "street", "district": "朝阳区", "street": "望京街道"}.items() <= next(
        p for p in streets if p["name"] == "望京街道").items()


def test_landmarks_cover_well_known_areas_with_valid_streets(places):
    landmarks = {p["name"]: p for p in places if p["kind"] == "landmark"}
    assert len(landmarks) >= 150
    missing = [n for n in REQUIRED_LANDMARKS if n not in landmarks]
    assert not missing
    assert landmarks["通州北苑"]["street"] == "北苑街道" and landmarks["通州北苑"]["district"] == "通州区"
    assert landmarks["回龙观"]["district"] == "昌平区"
    # every street named in landmarks.csv exists in that district (load_places validates; prove it rejects bad rows)
    header = (Path(gazetteer_data.__file__).parent / "data" / "landmarks.csv").read_text(encoding="utf-8")
    assert "compiled by the project" in header


def test_gazetteer_data_is_pure_stdlib_for_the_nlu_side():
    tree = ast.parse(Path(gazetteer_data.__file__).read_text(encoding="utf-8"))
    imported = {(n.module if isinstance(n, ast.ImportFrom) else a.name).split(".")[0]
                for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in (n.names if isinstance(n, ast.Import) else [n])}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}
    places = gazetteer_data.load_places(node_modules_dir())
    assert {p["kind"] for p in places} == {"district", "street", "landmark"}
    assert all(set(p) >= {"name", "kind", "district", "street", "aliases"} for p in places)


def test_gazetteer_rejects_a_landmark_on_a_wrong_street(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("name,district,street,aliases\n望京,海淀区,望京街道,\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not a street of 海淀区"):
        gazetteer_data.load_places(node_modules_dir(), bad)


@pytest.mark.parametrize(
    "text,district,street",
    [
        ("望京SOHO旁边的路灯坏了", "朝阳区", "望京街道"),
        ("回龙观那边有个小区停水了", "昌平区", "回龙观街道"),
        ("通州北苑附近", "通州区", "北苑街道"),
        ("梨园地铁站出口", "通州区", "梨园镇"),
        ("良乡西门附近", "房山区", "良乡地区"),
        ("良乡大学城西", "房山区", ""),
        ("我在海淀区上地十街", "海淀区", "上地街道"),
        ("住在天通苑", "昌平区", ""),
        ("银闸社区楼下", "东城区", "东华门街道"),
        ("朝阳区八里庄街道", "朝阳区", "八里庄街道"),
        ("海淀区八里庄街道", "海淀区", "八里庄街道"),
    ],
)
def test_place_resolution_districts_streets_landmarks_communities(index, text, district, street):
    loc = index.resolve(content=text)
    assert (loc.district, loc.street) == (district, street)
    assert loc.evidence


def test_place_resolution_of_nlu_slot_hints(index):
    loc = index.resolve(content="小区门口的路灯不亮", district="朝阳", street="望京")
    assert (loc.district, loc.street) == ("朝阳区", "望京街道")
    assert index.resolve(content="路灯不亮").district == ""


def test_seed_is_idempotent_and_generates_units(seeded_engine, db_session):
    assert seed_catalog(db_session) == {"unit_types": 0, "places": 0, "units": 0, "rules": 0,
                                        "community_duties": 0, "settings": 0}
    count = db_session.scalar(select(func.count()).select_from(Unit))
    assert count == db_session.scalar(select(func.count()).select_from(Unit))  # stable
    names = set(db_session.scalars(select(Unit.name)))
    for name in ["朝阳区望京街道办事处", "朝阳区人民政府", "朝阳区住房和城乡建设委员会", "朝阳区城市管理综合行政执法局",
                 "通州区梨园镇人民政府", "东城区东华门街道多福巷社区居委会", "北京市公安局朝阳分局",
                 "北京市自来水集团有限责任公司", "国网北京朝阳供电公司", "北京住房公积金管理中心"]:
        assert name in names, name
    assert "东城区农业农村局" not in names  # no such unit in the core districts
    assert count > 8000


def test_admin_edited_rule_survives_reseed(seeded_engine, db_session):
    rule = db_session.scalar(select(RoutingRule).where(RoutingRule.code == "kw_provident_fund"))
    original = list(rule.keywords)
    rule.keywords = [*original, "住房公积金贷款"]
    rule.origin = "admin"
    db_session.commit()
    try:
        # force the full seed path (fingerprint mismatch) and check the admin's edit stays
        from dispatch.orm import CatalogSetting

        db_session.get(CatalogSetting, "seed_fingerprint").value = "stale"
        db_session.commit()
        seed_catalog(db_session)
        db_session.refresh(rule)
        assert "住房公积金贷款" in rule.keywords and rule.origin == "admin"
    finally:
        rule.keywords, rule.origin = original, "seed"
        db_session.commit()


def test_catalog_reload_after_version_bump(seeded_engine, db_session):
    first = Catalog.load(db_session)
    assert Catalog.load(db_session) is first
    from dispatch.catalog.seed import bump_catalog_version

    bump_catalog_version(db_session)
    db_session.commit()
    assert Catalog.load(db_session) is not first


def test_migration_0002_matches_the_orm(db_engine):
    with db_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": False}), Base.metadata)
    ours = [d for d in diff if "dispatch_" in repr(d)]
    assert ours == []
