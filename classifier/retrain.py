"""The feedback loop: retrain with agents' final dispatch decisions merged in.

``python -m classifier.retrain --out DIR [--from-db] [--decisions FILE ...]``

* ``--from-db`` reads the decisions from the service database (``dispatch.service.export_dispatch_decisions``,
  one row per order, the latest decision wins, phone numbers masked) — the only place this package touches
  ``dispatch.service``, imported lazily by the command line;
* ``--decisions`` reads exported rows from CSV/XLSX/JSON files (columns ``text, request_type, category_l1,
  category_l2, unit_type``).

Decision rows are validated like any import (invalid rows are reported and skipped) and take precedence over corpus
rows with the same text (an agent's final choice is the newest truth). The merged decision rows are written to
``DIR/feedback_rows.csv`` for audit; everything else is :mod:`classifier.train`.
"""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from .data import default_taxonomy_path, dedupe
from .importer import ImportResult, validate_records, write_rows
from .labels import L2_SEP, l2_key, load_taxonomy
from .train import build_parser as train_parser
from .train import train_from_args

log = logging.getLogger("classifier.retrain")


def validate_decisions(decisions: list[dict], source: str = "dispatch decisions") -> ImportResult:
    """Exported decision dicts -> validated training rows (request type etc. may be empty = unknown)."""
    taxonomy = load_taxonomy(default_taxonomy_path()) or None
    res = validate_records([(i + 1, d) for i, d in enumerate(decisions)], source=source, require=("text",),
                           min_text_chars=2, taxonomy=taxonomy)
    for row in res.rows:
        if row["category_l2"] and L2_SEP not in row["category_l2"]:
            row["category_l2"] = l2_key(row["category_l1"], row["category_l2"])
        row["source"] = "feedback"
    return res


def merge_decisions(rows: list[dict], decisions: list[dict]) -> tuple[list[dict], ImportResult]:
    """Training rows with the validated decisions merged in first (they win over rows with the same text)."""
    res = validate_decisions(decisions)
    return dedupe(res.rows + rows), res


def read_decision_files(paths: list[Path]) -> list[dict]:
    out: list[dict] = []
    for path in paths:
        path = Path(path)
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            out += list(data["rows"] if isinstance(data, dict) else data)
        else:
            from .importer import read_table, resolve_columns

            header, table = read_table(path)
            cols = resolve_columns(header)
            out += [{f: (r[i] if i < len(r) else "") for f, i in cols.items()} for r in table if any(r)]
    return out


def decisions_from_db(database_url: str | None = None) -> list[dict]:
    from core.db import make_engine, session_factory

    from dispatch.service import export_dispatch_decisions  # CLI-only import (see README)

    if database_url:
        factory = session_factory(make_engine(database_url))
    else:
        factory = session_factory()
    with factory() as session:
        return export_dispatch_decisions(session)


def main(argv: list[str] | None = None) -> int:
    ap = train_parser()
    ap.description = "Retrain the classifier with agents' exported dispatch decisions merged in"
    ap.add_argument("--from-db", action="store_true", help="export the decisions from the service database")
    ap.add_argument("--database-url", help="SQLAlchemy URL (default: the services' settings)")
    ap.add_argument("--decisions", type=Path, action="append", default=[], help="exported decision rows")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    decisions = read_decision_files(args.decisions)
    if args.from_db:
        decisions += decisions_from_db(args.database_url)
    merged: dict = {}
    extra: dict = {}

    def merge(rows: list[dict], report: list[dict]) -> list[dict]:
        rows, res = merge_decisions(rows, decisions)
        report.append(res.summary())
        print(f"dispatch decisions: {len(res.rows)} of {res.total} rows accepted", file=sys.stderr)
        for err in res.errors[:20]:
            print(f"  {err}", file=sys.stderr)
        merged["res"] = res
        extra["feedback_rows"] = len(res.rows)
        return rows

    metrics = train_from_args(args, merge=merge, version_tag="-fb", extra_metrics=extra)
    if metrics is None:
        return 1
    res = merged["res"]
    write_rows(res.rows, Path(args.out) / "feedback_rows.csv")
    print(json.dumps({"out": str(args.out), "model_version": metrics["model_version"],
                      "feedback_rows": len(res.rows), "rows": metrics["rows"]}, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
