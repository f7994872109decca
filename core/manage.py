"""Administrative commands for the services environment.

    python -m core.manage init-db      # migrate to the newest schema and (re)seed catalog and knowledge base; idempotent
    python -m core.manage check-db     # print the database URL (password hidden) and current revisions
"""
from __future__ import annotations

import argparse
import logging
import sys

from sqlalchemy import text

from core.config import get_settings
from core.db import get_engine, migrate, session_scope

logger = logging.getLogger(__name__)


def _safe_url(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def init_db() -> None:
    settings = get_settings()
    print(f"      database: {_safe_url(settings.sqlalchemy_url)}", flush=True)
    migrate()
    print("      schema at newest revision", flush=True)
    seeders = []
    try:
        from dispatch.catalog.seed import seed_catalog

        seeders.append(("dispatch catalog", seed_catalog))
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("dispatch"):
            raise
    try:
        from knowledge_base.seed import seed_knowledge_base

        seeders.append(("knowledge base", seed_knowledge_base))
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("knowledge_base"):
            raise
    for name, seeder in seeders:
        with session_scope() as session:
            summary = seeder(session)
        print(f"      seeded {name}: {summary}", flush=True)


def check_db() -> None:
    print(_safe_url(get_settings().sqlalchemy_url))
    with get_engine().connect() as conn:
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    print("revisions:", ", ".join(sorted(rows)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.manage")
    parser.add_argument("command", choices=["init-db", "check-db"])
    args = parser.parse_args(argv)
    {"init-db": init_db, "check-db": check_db}[args.command]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
