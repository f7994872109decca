"""Beijing gazetteer: finds districts, streets/townships, communities and landmarks in normalised text.

``Gazetteer`` is plain Python (built from the place list of :mod:`nlu.places`, serialisable to JSON);
``BeijingGazetteerExtractor`` wraps it as a Rasa entity extractor. Entities emitted (values are canonical names):

- ``district``: ``朝阳区`` — for explicit mentions (``朝阳区``, ``朝阳``, ``崇文``) and, with ``metadata.derived_from``,
  for the district a street/landmark/community resolves to;
- ``street``: ``望京街道`` — explicit street/township names and the street a landmark/community resolves to;
- ``landmark``: widely known areas, landmarks, stations and (``metadata.kind == "community"``) residential
  communities/villages, value = the name as known (``望京``, ``望京西园三区``);
- ``address``: the place phrase around the matches (``朝阳区望京西园三区``, ``回龙观龙泽苑东区门口``), a heuristic span
  that starts at the first place mention of a clause and extends over address-like characters up to the last
  address suffix (号楼, 小区, 路, 门口 ...).

Every place entity carries ``metadata = {kind, district, street, matched, candidates?}``; a name that exists in
several districts is resolved by an explicit district mention in the same message, otherwise ``district`` is ``None``
and ``candidates`` lists the possibilities.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Text, Tuple

from nlu.text import normalize

logger = logging.getLogger(__name__)

KIND_PRIORITY = {"district": 0, "landmark": 1, "street": 2, "community": 3}
ENTITY_FOR_KIND = {"district": "district", "street": "street", "landmark": "landmark", "community": "landmark"}

# Short names that are ordinary words in citizens' messages, on top of the loader's GENERIC_SHORT_NAMES.
EXTRA_GENERIC = frozenset(
    "清水 八角 康庄 梨园 礼贤 观音寺 北海 高岭 石城 宝山 永宁 四海 百善 延寿 兴寿 流村 旧县 北房 香营 井庄 南邵 崔村 "
    "新城 城关 阳坊 古北口镇 小区 社区 公园 广场 中心".split()
)
# Phrases in which a place name is not a place ("上地铁" is not 上地, "康庄大道" is not 康庄).
BLOCKED_CONTEXTS = re.compile(r"上地铁|康庄大道|八角茴香|梨园(?:戏|行|弟子)|礼贤下士|清水(?:衙门|房)|北海道|宝山区|天桥上|过天桥|人行天桥")

_STREET_SUFFIXES = ("民族乡", "回族乡", "满族乡", "街道", "地区", "镇", "乡")
_ADDRESS_CHAR = re.compile(r"[\u4e00-\u9fffA-Za-z0-9#\-]")
_ADDRESS_SUFFIXES = (
    "号楼", "号院", "单元", "小区", "社区", "家园", "花园", "公寓", "大厦", "中心", "广场", "市场", "商场", "门口", "路口",
    "附近", "旁边", "对面", "东侧", "西侧", "南侧", "北侧", "东门", "西门", "南门", "北门", "胡同", "大街", "地铁站",
    "站", "村", "区", "园", "苑", "里", "院", "路", "街", "巷", "号", "层", "室", "楼", "门", "桥", "口", "庄", "城", "府",
    "店", "营", "坊", "湾", "河", "寺", "屯", "厂", "校", "馆", "道",
)
_ADDRESS_STOP = (
    "的", "有", "是", "被", "把", "了", "很", "太", "总", "都", "也", "还", "就", "又", "和", "跟", "与", "我", "你", "他", "她",
    "它", "这", "那", "天天", "经常", "一直", "每天", "晚上", "白天", "早上", "半夜", "凌晨", "最近", "现在", "今天",
    "昨天", "乱", "不", "没", "要", "想", "能", "会", "说", "让", "给", "对", "从", "往", "向", "到", "在", "啊", "吧",
    "呢", "吗", "着", "过", "占", "堆", "停", "摆", "施工", "装修", "漏", "堵", "坏", "吵", "噪", "臭", "脏", "积水",
    "一", "两", "几", "多", "好", "大", "小", "老", "新", "上", "下",
)
_MAX_ADDRESS_EXTENSION = 16


@dataclass(frozen=True)
class Place:
    name: str
    kind: str
    district: str
    street: str


@dataclass
class Match:
    start: int
    end: int
    surface: str
    places: List[Place]


def _short_street(name: str) -> str:
    for suffix in _STREET_SUFFIXES:
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            return name[: -len(suffix)]
    return name


def _norm(text: str) -> str:
    return normalize(text)[0]


class Gazetteer:
    """Surface form → places, with longest-match search and district resolution."""

    def __init__(self, surfaces: Dict[str, List[Place]], districts: Sequence[str],
                 weak: Optional[Dict[str, List[Place]]] = None) -> None:
        self.surfaces = surfaces
        # generic short names (八里庄, 新村, 光明 ...): matched only when an explicit district in the same message
        # confirms one of their places ("海淀区八里庄")
        self.weak = weak or {}
        self.districts = list(districts)
        self.max_len = max((len(s) for s in list(surfaces) + list(self.weak)), default=0)

    # ------------------------------------------------------------------ building / persistence
    @classmethod
    def from_places(cls, places: Iterable[dict], generic_short_names: Iterable[str] = ()) -> "Gazetteer":
        generic = set(generic_short_names) | EXTRA_GENERIC
        surfaces: Dict[str, List[Place]] = {}
        weak: Dict[str, List[Place]] = {}
        districts: List[str] = []

        def add(surface: str, place: Place, target: Optional[Dict[str, List[Place]]] = None) -> None:
            surface = _norm(surface.strip())
            if len(surface) < 2:
                return
            bucket = (surfaces if target is None else target).setdefault(surface, [])
            if place not in bucket:
                bucket.append(place)

        places = list(places)
        district_shorts = set()
        for p in places:
            if p["kind"] == "district":
                districts.append(p["name"])
                district_shorts.add(p["name"][:-1])
        for p in places:
            kind = p["kind"]
            place = Place(p["name"], kind, p.get("district") or "", p.get("street") or "")
            add(p["name"], place)
            aliases = list(p.get("aliases") or [])
            if kind == "district" and p["name"] in ("密云区", "延庆区"):
                aliases.append(p["name"][:-1] + "县")
            if kind == "street":
                short = _short_street(p["name"])
                if short != p["name"] and short not in aliases:
                    aliases.append(short)
            if kind == "community":
                for alias in list(aliases):
                    if alias.endswith("社区") and len(alias) - 2 >= 4:
                        aliases.append(alias[:-2])
            for alias in aliases:
                a = alias.strip()
                if kind != "district" and (a in generic or a in district_shorts):
                    if kind == "street" and a not in district_shorts:
                        add(a, place, weak)
                    continue
                if kind == "community" and len(a) < 3:
                    continue
                add(a, place)
        weak = {k: v for k, v in weak.items() if k not in surfaces}
        return cls(surfaces, districts, weak)

    def to_json(self) -> str:
        return json.dumps(
            {
                "districts": self.districts,
                "surfaces": {s: [[p.name, p.kind, p.district, p.street] for p in ps] for s, ps in self.surfaces.items()},
                "weak": {s: [[p.name, p.kind, p.district, p.street] for p in ps] for s, ps in self.weak.items()},
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, data: str) -> "Gazetteer":
        raw = json.loads(data)
        surfaces = {s: [Place(*p) for p in ps] for s, ps in raw["surfaces"].items()}
        weak = {s: [Place(*p) for p in ps] for s, ps in raw.get("weak", {}).items()}
        return cls(surfaces, raw["districts"], weak)

    def vocabulary(self) -> List[str]:
        """All surface forms (for the jieba user dictionary)."""
        return sorted(self.surfaces)

    # ------------------------------------------------------------------ search
    def find(self, text: str, confirmed_districts: Sequence[str] = ()) -> List[Match]:
        """Non-overlapping longest matches, left to right, on already-normalised text.

        Generic short names count only with one of their places in ``confirmed_districts``.
        """
        blocked = [(m.start(), m.end()) for m in BLOCKED_CONTEXTS.finditer(text)]
        matches: List[Match] = []
        i, n = 0, len(text)
        while i < n:
            found = None
            for length in range(min(self.max_len, n - i), 1, -1):
                surface = text[i : i + length]
                places = self.surfaces.get(surface)
                if places is None and confirmed_districts and surface in self.weak:
                    places = [p for p in self.weak[surface] if p.district in confirmed_districts] or None
                if places:
                    if any(bs <= i and i + length <= be for bs, be in blocked):
                        continue
                    found = Match(i, i + length, surface, places)
                    break
            if found:
                matches.append(found)
                i = found.end
            else:
                i += 1
        return matches

    @staticmethod
    def _resolve(match: Match, explicit_districts: Sequence[str]) -> Dict[str, Any]:
        places = sorted(match.places, key=lambda p: KIND_PRIORITY.get(p.kind, 9))
        primary_kind = places[0].kind
        primary = [p for p in places if p.kind == primary_kind]
        districts = sorted({p.district for p in primary if p.district})
        if len(districts) > 1:
            chosen = [d for d in districts if d in explicit_districts]
            districts = chosen if len(chosen) == 1 else districts
        district = districts[0] if len(districts) == 1 else None
        street = None
        if district:
            streets = {p.street for p in primary if p.district == district and p.street}
            if not streets:
                streets = {p.street for p in places if p.district == district and p.street}
            street = next(iter(streets)) if len(streets) == 1 else None
        value = primary[0].name if primary_kind in ("district", "street", "landmark") else match.surface
        if primary_kind in ("district", "street") and len({p.name for p in primary}) == 1:
            value = primary[0].name
        resolved = {
            "kind": primary_kind,
            "value": value,
            "district": district,
            "street": street,
            "matched": match.surface,
        }
        if primary_kind == "community":
            names = sorted({p.name for p in primary if district is None or p.district == district})
            resolved["community"] = names[0] if len(names) == 1 else None
        if district is None:
            resolved["candidates"] = [
                {"name": p.name, "kind": p.kind, "district": p.district, "street": p.street or None} for p in primary
            ]
        return resolved

    def extract(self, text: str) -> List[Dict[str, Any]]:
        """Entities (Rasa format, without extractor name) for already-normalised ``text``."""
        matches = self.find(text)
        if not matches:
            return []
        first_pass = [self._resolve(m, ()) for m in matches]
        explicit = [r["value"] for r in first_pass if r["kind"] == "district"]
        if explicit and self.weak:
            matches = self.find(text, explicit)
        entities: List[Dict[str, Any]] = []
        seen_district, seen_street = set(), set()
        explicit_streets = {r["value"] for r in first_pass if r["kind"] == "street"}
        for m in matches:
            r = self._resolve(m, explicit)
            metadata = {k: v for k, v in r.items() if k not in ("value",)}
            entity_type = ENTITY_FOR_KIND[r["kind"]]
            entities.append(_entity(entity_type, m.start, m.end, r["value"], metadata))
            if entity_type == "district":
                seen_district.add(r["value"])
            elif entity_type == "street":
                seen_street.add(r["value"])
            if r["district"] and entity_type != "district" and r["district"] not in seen_district and r["district"] not in explicit:
                entities.append(
                    _entity("district", m.start, m.end, r["district"], {"derived_from": r["value"], "kind": r["kind"]})
                )
                seen_district.add(r["district"])
            if r["street"] and entity_type not in ("street", "district") and r["street"] not in seen_street \
                    and r["street"] not in explicit_streets:
                entities.append(
                    _entity("street", m.start, m.end, r["street"],
                            {"derived_from": r["value"], "kind": r["kind"], "district": r["district"]})
                )
                seen_street.add(r["street"])
        for start, end in address_spans(text, [(m.start, m.end) for m in matches]):
            entities.append(_entity("address", start, end, text[start:end], {"source": "gazetteer"}))
        entities.sort(key=lambda e: (e["start"], e["entity"] != "landmark"))
        return entities

    def resolve_text(self, text: str) -> Dict[str, Optional[str]]:
        """Convenience: the last district/street mentioned in raw ``text`` (normalised here)."""
        district = street = None
        for e in self.extract(_norm(text)):
            if e["entity"] == "district":
                district = e["value"]
            elif e["entity"] == "street":
                street = e["value"]
        return {"district": district, "street": street}


def _entity(entity: str, start: int, end: int, value: str, metadata: Dict[str, Any]) -> Dict[str, Any]:
    return {"entity": entity, "start": start, "end": end, "value": value, "confidence_entity": 1.0,
            "metadata": metadata}


def _extend(text: str, pos: int) -> int:
    """End of the address phrase that continues at ``pos`` (see module docstring)."""
    best = pos
    j = pos
    limit = min(len(text), pos + _MAX_ADDRESS_EXTENSION)
    while j < limit and _ADDRESS_CHAR.match(text[j]):
        if any(text.startswith(stop, j) for stop in _ADDRESS_STOP) and not text[j].isdigit():
            # "一/两/大/小/上/下 ..." only stop when not followed by an address unit (三区, 一号楼, 上地)
            if not (text[j] in "一两大小老新上下" and j + 1 < len(text) and re.match(r"[\u4e00-\u9fff0-9]", text[j + 1])
                    and _suffix_ahead(text, j)):
                break
        j += 1
        if text[pos:j].endswith(_ADDRESS_SUFFIXES) or text[j - 1].isdigit() and j < len(text) and text[j] in "号栋层室":
            best = j
    return best


def _suffix_ahead(text: str, j: int) -> bool:
    window = text[j : j + 4]
    return any(s in window for s in ("号", "区", "楼", "单元", "层", "门", "里", "院", "街", "路"))


def address_spans(text: str, match_spans: Sequence[Tuple[int, int]]) -> List[Tuple[int, int]]:
    spans: List[List[int]] = []
    for start, end in match_spans:
        if spans and start <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], _extend(text, max(end, spans[-1][1])))
            continue
        # a leading "在/位于/住" is not part of the address
        spans.append([start, max(end, _extend(text, end))])
    return [(s, e) for s, e in spans]


# --------------------------------------------------------------------------------------------- Rasa component

try:  # the pure part above is importable without Rasa (tests of the services side, tooling)
    from rasa.engine.graph import ExecutionContext, GraphComponent
    from rasa.engine.recipes.default_recipe import DefaultV1Recipe
    from rasa.engine.storage.resource import Resource
    from rasa.engine.storage.storage import ModelStorage
    from rasa.nlu.extractors.extractor import EntityExtractorMixin
    from rasa.shared.nlu.constants import ENTITIES, TEXT
    from rasa.shared.nlu.training_data.message import Message
    from rasa.shared.nlu.training_data.training_data import TrainingData
except ImportError:  # pragma: no cover
    DefaultV1Recipe = None


if DefaultV1Recipe is not None:

    @DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=True)
    class BeijingGazetteerExtractor(GraphComponent, EntityExtractorMixin):
        """Rasa entity extractor over :class:`Gazetteer` (built at train time, persisted in the model)."""

        FILE = "gazetteer.json"

        @staticmethod
        def get_default_config() -> Dict[Text, Any]:
            return {
                "loader": "dispatch/catalog/gazetteer_data.py",
                "node_modules": "node_modules",
                "landmarks": "dispatch/catalog/data/landmarks.csv",
                "include_communities": True,
                "emit_address": True,
            }

        def __init__(self, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
                     gazetteer: Optional[Gazetteer] = None) -> None:
            self._config = config
            self._model_storage = model_storage
            self._resource = resource
            self.gazetteer = gazetteer

        @classmethod
        def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
                   execution_context: ExecutionContext) -> "BeijingGazetteerExtractor":
            return cls(config, model_storage, resource)

        @staticmethod
        def build(config: Dict[Text, Any]) -> Gazetteer:
            from nlu.places import load_places

            places, generic = load_places(config["loader"], config["node_modules"], config["landmarks"],
                                          config["include_communities"])
            return Gazetteer.from_places(places, generic)

        @classmethod
        def fingerprint_addon(cls, config: Dict[Text, Any]) -> Optional[str]:
            """The gazetteer's content (the catalog's place data), which Rasa's training cache does not see."""
            return hashlib.sha256(cls.build(config).to_json().encode("utf-8")).hexdigest()

        def train(self, training_data: TrainingData) -> Resource:
            self.gazetteer = self.build(self._config)
            with self._model_storage.write_to(self._resource) as directory:
                (directory / self.FILE).write_text(self.gazetteer.to_json(), encoding="utf-8")
            logger.info("gazetteer built with %d surface forms", len(self.gazetteer.surfaces))
            return self._resource

        @classmethod
        def load(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
                 execution_context: ExecutionContext, **kwargs: Any) -> "BeijingGazetteerExtractor":
            with model_storage.read_from(resource) as directory:
                gazetteer = Gazetteer.from_json((directory / cls.FILE).read_text(encoding="utf-8"))
            return cls(config, model_storage, resource, gazetteer)

        def process(self, messages: List[Message]) -> List[Message]:
            for message in messages:
                text = message.get(TEXT)
                if not text or text.startswith("/") or self.gazetteer is None:
                    continue
                found = self.gazetteer.extract(text)
                if not self._config.get("emit_address", True):
                    found = [e for e in found if e["entity"] != "address"]
                found = self.add_extractor_name(found)
                message.set(ENTITIES, message.get(ENTITIES, []) + found, add_to_output=True)
            return messages
