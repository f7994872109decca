"""Training data: our corpus (``training_data/classifier``), the shared real messages, imported or exported rows.

Rows are dicts ``text, request_type, category_l1, category_l2, unit_type, source``; an empty label is unknown and
masked in the loss. ``category_l2`` is kept as an ``一级/二级`` key (see :mod:`classifier.labels`).
"""
from __future__ import annotations

import hashlib
import os
from collections import Counter
from pathlib import Path

from .importer import ImportFormatError, ImportResult, import_work_orders
from .labels import L2_SEP, ROOT, l2_key, load_taxonomy

CORPUS_DIR = ROOT / "training_data" / "classifier"
SHARED_ENV = "JSJB_CLASSIFIER_SHARED_DATA"
SHARED_DEFAULT = ROOT.parent / "shared" / "datasets" / "tipdm2020" / "messages_segmented.csv"
TAXONOMY_DEFAULT = ROOT.parent / "shared" / "datasets" / "tipdm2020" / "taxonomy.csv"
SHARED_TEST_SIZE = 0.2
SHARED_SPLIT_SEED = 2020


def default_shared_path() -> Path | None:
    """The shared real data: ``$JSJB_CLASSIFIER_SHARED_DATA`` (``none`` disables) or ``../shared/…`` next to the repo."""
    value = os.environ.get(SHARED_ENV)
    if value is not None:
        return None if value.strip().lower() in ("", "none", "off") else Path(value)
    return SHARED_DEFAULT


def default_taxonomy_path() -> Path | None:
    shared = default_shared_path()
    if shared is not None and (shared.parent / "taxonomy.csv").is_file():
        return shared.parent / "taxonomy.csv"
    return TAXONOMY_DEFAULT if TAXONOMY_DEFAULT.is_file() else None


def _finish(result: ImportResult, source: str) -> list[dict]:
    out = []
    for row in result.rows:
        row = dict(row)
        if row["category_l2"] and L2_SEP not in row["category_l2"]:
            row["category_l2"] = l2_key(row["category_l1"], row["category_l2"])
        row["source"] = source
        out.append(row)
    return out


def load_corpus(split: str = "train", corpus_dir: Path = CORPUS_DIR, *, report: list | None = None) -> list[dict]:
    """Rows of ``{split}_*.csv`` (all parts present now; rows with invalid labels are skipped and reported)."""
    rows: list[dict] = []
    taxonomy = load_taxonomy(default_taxonomy_path()) or None
    for path in sorted(Path(corpus_dir).glob(f"{split}_*.csv")):
        try:
            res = import_work_orders(path, require=("text",), taxonomy=taxonomy, min_text_chars=2)
        except ImportFormatError as exc:  # a part being written may be momentarily unreadable
            if report is not None:
                report.append({"source": str(path), "error": exc.message_zh})
            continue
        if report is not None:
            report.append(res.summary())
        rows += _finish(res, f"corpus:{path.stem}")
    return rows


def load_shared(path: Path | None = None, *, report: list | None = None) -> list[dict]:
    """The shared real messages (jieba-segmented ``text,label``) through the import path; [] when absent."""
    path = default_shared_path() if path is None else path
    if path is None or not Path(path).is_file():
        return []
    res = import_work_orders(path, {"text": "text", "category_l1": "label"}, segmented=True)
    if report is not None:
        report.append(res.summary())
    return _finish(res, "shared")


def load_rows_file(path: Path, mapping: dict[str, str] | None = None, *, segmented: bool = False,
                   source: str | None = None, report: list | None = None) -> list[dict]:
    """Any imported table (historical orders, exported dispatch decisions)."""
    res = import_work_orders(path, mapping, segmented=segmented, require=("text",),
                             taxonomy=load_taxonomy(default_taxonomy_path()) or None)
    if report is not None:
        report.append(res.summary())
    return _finish(res, source or f"import:{Path(path).name}")


def shared_split(rows: list[dict], test_size: float = SHARED_TEST_SIZE,
                 seed: int = SHARED_SPLIT_SEED) -> tuple[list[dict], list[dict]]:
    """Stratified (by category_l1) fixed-seed split of the shared data into (train, held-out test).

    Training rows whose text also occurs in the test part are dropped, so no test text is ever seen in training.
    """
    from sklearn.model_selection import train_test_split

    if not rows:
        return [], []
    idx = list(range(len(rows)))
    tr, te = train_test_split(idx, test_size=test_size, random_state=seed, stratify=[r["category_l1"] for r in rows])
    test = [rows[i] for i in sorted(te)]
    seen = {r["text"] for r in test}
    train = [rows[i] for i in sorted(tr) if rows[i]["text"] not in seen]
    return train, test


def dedupe(rows: list[dict], exclude_texts: set[str] | None = None) -> list[dict]:
    """Drop repeated texts (the first labelled occurrence wins; later rows fill labels it lacks)."""
    out: dict[str, dict] = {}
    exclude_texts = exclude_texts or set()
    for row in rows:
        if row["text"] in exclude_texts:
            continue
        prev = out.get(row["text"])
        if prev is None:
            out[row["text"]] = dict(row)
        else:
            for k in ("request_type", "category_l1", "category_l2", "unit_type"):
                if not prev.get(k) and row.get(k):
                    prev[k] = row[k]
    return list(out.values())


def rows_fingerprint(rows: list[dict]) -> str:
    h = hashlib.sha256()
    for r in rows:
        h.update("\x1f".join(r.get(k, "") for k in ("text", "request_type", "category_l1", "category_l2",
                                                      "unit_type")).encode())
    return h.hexdigest()[:16]


def label_counts(rows: list[dict], head: str) -> dict[str, int]:
    return dict(Counter(r[head] for r in rows if r.get(head)).most_common())
