"""Label sets of the four heads and their JSON round trip.

* ``request_type``: the six types of :data:`dispatch.proposal.REQUEST_TYPES`;
* ``category_l1``: the 15 first-level categories of the taxonomy;
* ``category_l2``: second-level categories, as ``"一级/二级"`` pairs (names such as 其他 or 安全生产 occur under several
  first-level categories), only those with enough training examples ("where data allows");
* ``unit_type``: the codes of ``dispatch/catalog/unit_types.yaml``.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from dispatch.proposal import REQUEST_TYPES

ROOT = Path(__file__).resolve().parent.parent
UNIT_TYPES_YAML = ROOT / "dispatch" / "catalog" / "unit_types.yaml"
HEADS = ("request_type", "category_l1", "category_l2", "unit_type")
L2_SEP = "/"

CATEGORY_L1 = ("城乡建设", "环境保护", "交通运输", "教育文体", "劳动和社会保障", "商贸旅游", "卫生计生", "农村农业", "政法",
               "民政", "党务政务", "经济管理", "纪检监察", "国土资源", "科技与信息产业")


def load_unit_types(path: Path = UNIT_TYPES_YAML) -> dict[str, str]:
    """``{code: name}`` of the handling-unit types, in file order."""
    items = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or []
    return {str(item["code"]): str(item.get("name") or item["code"]) for item in items}


def load_taxonomy(path: Path | None) -> set[tuple[str, str]]:
    """The (level1, level2) pairs of ``taxonomy.csv`` (columns level1, level2[, level3]); empty when absent."""
    if path is None or not Path(path).is_file():
        return set()
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return {(row["level1"].strip(), row["level2"].strip()) for row in csv.DictReader(fh)
                if row.get("level1") and row.get("level2")}


def l2_key(l1: str, l2: str) -> str:
    return f"{l1}{L2_SEP}{l2}"


def split_l2_key(key: str) -> tuple[str, str]:
    l1, _, l2 = key.partition(L2_SEP)
    return l1, l2


@dataclass
class LabelMaps:
    """Ordered label lists per head; index ``i`` of a head's logits is ``labels[head][i]``."""

    labels: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._index = {h: {lab: i for i, lab in enumerate(labs)} for h, labs in self.labels.items()}

    def size(self, head: str) -> int:
        return len(self.labels.get(head, []))

    def index(self, head: str, label: str | None) -> int:
        """Index of ``label`` in ``head``; -1 for a missing or unknown label (masked in the loss)."""
        if not label:
            return -1
        return self._index.get(head, {}).get(label, -1)

    def label(self, head: str, index: int) -> str:
        return self.labels[head][index]

    def to_json(self) -> str:
        return json.dumps({"heads": list(self.labels), "labels": self.labels}, ensure_ascii=False, indent=1)

    @classmethod
    def from_json(cls, text: str) -> LabelMaps:
        data = json.loads(text)
        return cls({h: list(data["labels"][h]) for h in data["heads"]})

    def save(self, path: Path) -> None:
        Path(path).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> LabelMaps:
        return cls.from_json(Path(path).read_text(encoding="utf-8"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelMaps) and self.labels == other.labels


def build_label_maps(rows: list[dict], *, unit_types: dict[str, str] | None = None,
                     taxonomy: set[tuple[str, str]] | None = None, min_l2_examples: int = 3) -> LabelMaps:
    """Label maps for training rows (dicts with the head columns; ``category_l2`` already as ``l1/l2`` key or empty).

    request type, category L1 and unit type are fixed sets (so a class without data is still a known label);
    category L2 keeps the pairs with at least ``min_l2_examples`` rows (and, when a taxonomy is given, only its pairs).
    """
    unit_types = unit_types if unit_types is not None else load_unit_types()
    counts: dict[str, int] = {}
    for row in rows:
        key = row.get("category_l2") or ""
        if key:
            counts[key] = counts.get(key, 0) + 1
    l2 = sorted(k for k, n in counts.items() if n >= min_l2_examples
                and (not taxonomy or split_l2_key(k) in taxonomy) and split_l2_key(k)[0] in CATEGORY_L1)
    l2.sort(key=lambda k: (CATEGORY_L1.index(split_l2_key(k)[0]), k))
    return LabelMaps({"request_type": list(REQUEST_TYPES), "category_l1": list(CATEGORY_L1), "category_l2": l2,
                      "unit_type": list(unit_types)})
