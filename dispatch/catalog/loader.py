"""Reading the catalog's data files (YAML under ``dispatch/catalog``): unit types, municipal units, rules, duties, deadlines."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

CATALOG_DIR = Path(__file__).resolve().parent
DATA_DIR = CATALOG_DIR / "data"


def _load(path: Path):
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@lru_cache
def unit_types() -> list[dict]:
    return _load(CATALOG_DIR / "unit_types.yaml")


def unit_type_names() -> dict[str, str]:
    return {t["code"]: t["name"] for t in unit_types()}


@lru_cache
def municipal_units() -> dict[str, list[dict]]:
    return _load(DATA_DIR / "municipal_units.yaml")


@lru_cache
def routing_rules_file() -> dict:
    return _load(DATA_DIR / "routing_rules.yaml")


@lru_cache
def community_duties() -> list[dict]:
    return _load(DATA_DIR / "community_duties.yaml")


def deadlines_file(path: Path | None = None) -> dict:
    return _load(path or DATA_DIR / "deadlines.yaml")
