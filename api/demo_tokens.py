"""Development convenience for ``make run``: one token per role, written once to ``var/demo-tokens.txt``.

Tokens are stored hashed like any other (api/auth.py); the clear text exists only in that file, which lives in the
git-ignored ``var/`` folder. Never use this in production: create named tokens with ``python -m api.auth create-token``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sqlalchemy import select

from api.auth import ROLES, create_token
from core.db import session_factory

DEMO_UNIT_NAME = "朝阳区望京街道办事处"


def _demo_unit_code(session) -> str | None:
    from dispatch.orm import Unit

    return session.scalar(select(Unit.code).where(Unit.name == DEMO_UNIT_NAME)) or session.scalar(
        select(Unit.code).order_by(Unit.code).limit(1))


def write_demo_tokens(out: Path) -> bool:
    if out.exists():
        return False
    lines = ["# 演示令牌（仅供开发环境）：Authorization: Bearer <token>"]
    with session_factory()() as session:
        for role in ROLES:
            unit = _demo_unit_code(session) if role == "unit" else None
            if role == "unit" and unit is None:
                continue
            token = create_token(session, role, f"演示{role}", unit_code=unit)
            lines.append(f"{role}\t{token}" + (f"\t{unit}" if unit else ""))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    out.chmod(0o600)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api.demo_tokens")
    parser.add_argument("--out", type=Path, default=Path("var/demo-tokens.txt"))
    args = parser.parse_args(argv)
    created = write_demo_tokens(args.out)
    print(("wrote " if created else "kept ") + str(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
