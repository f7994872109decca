"""Loading Beijing place data for the NLU components at *train* time.

The single source of truth is ``dispatch/catalog/gazetteer_data.py`` (standard library only, written for the dispatch
catalog and meant to be loadable from the Rasa environment by path). It is imported here by file path — never as the
``dispatch`` package, whose other modules belong to the services environment. The trained gazetteer and jieba
dictionary are persisted inside the Rasa model, so a deployed model needs none of these files at run time.
"""
from __future__ import annotations

import importlib.util
import sys
from functools import lru_cache
from pathlib import Path
from typing import List, Optional

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LOADER = "dispatch/catalog/gazetteer_data.py"
DEFAULT_NODE_MODULES = "node_modules"
DEFAULT_LANDMARKS = "dispatch/catalog/data/landmarks.csv"


def resolve_path(path: Optional[str]) -> Optional[Path]:
    """Absolute paths stay; relative ones are taken from the repository root (not the working directory)."""
    if path is None:
        return None
    p = Path(path)
    return p if p.is_absolute() else REPO_ROOT / p


def _import_loader(path: Path):
    name = "_jsjb_gazetteer_data"
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path):
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"place-data loader not found: {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@lru_cache(maxsize=4)
def _load(loader: str, node_modules: str, landmarks: str, include_communities: bool) -> tuple:
    module = _import_loader(Path(loader))
    places = module.load_places(Path(node_modules), Path(landmarks) if landmarks else None,
                                include_communities=include_communities)
    generic = frozenset(getattr(module, "GENERIC_SHORT_NAMES", frozenset()))
    return tuple(places), generic


def load_places(
    loader: str = DEFAULT_LOADER,
    node_modules: str = DEFAULT_NODE_MODULES,
    landmarks: Optional[str] = DEFAULT_LANDMARKS,
    include_communities: bool = True,
) -> tuple[List[dict], frozenset]:
    """``(places, generic_short_names)``; each place is ``{name, kind, district, street, aliases, code}``."""
    places, generic = _load(
        str(resolve_path(loader)),
        str(resolve_path(node_modules)),
        str(resolve_path(landmarks)) if landmarks else "",
        include_communities,
    )
    return [dict(p) for p in places], generic
