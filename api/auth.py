"""Bearer-token auth with roles (citizen, agent, unit, editor, evaluator, admin) and the API's database session.

Tokens are random, shown once when created and stored only as SHA-256 hashes (``auth_tokens``). A ``unit`` token is
bound to one handling unit of the dispatch catalog and acts only on that unit's orders.

CLI::

    python -m api.auth create-token --role agent --name 张三
    python -m api.auth create-token --role unit --name 望京街道接诉即办 --unit street_office:110105026
    python -m api.auth list-tokens
    python -m api.auth revoke-token --id 3
"""
from __future__ import annotations

import argparse
import hashlib
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth_orm import ApiToken
from core.db import session_factory
from dispatch.orm import utcnow
from dispatch.proposal import Actor

ROLES = ("citizen", "agent", "unit", "editor", "evaluator", "admin")
TOKEN_PREFIX = "jsjb_"

_bearer = HTTPBearer(auto_error=False, description="令牌：python -m api.auth create-token --role … --name …")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def db_session() -> Iterator[Session]:
    """FastAPI dependency: one session per request on the configured database (tests override it)."""
    session = session_factory()()
    try:
        yield session
    finally:
        session.close()


@dataclass(frozen=True)
class Principal:
    token_id: int
    name: str
    role: str
    unit_code: str | None = None

    @property
    def actor(self) -> Actor:
        return Actor(self.name, self.role, self.unit_code)


def create_token(session: Session, role: str, name: str, unit_code: str | None = None) -> str:
    """Create a token and return it in clear (the only time it is shown); commits."""
    if role not in ROLES:
        raise ValueError(f"角色须为{'、'.join(ROLES)}之一")
    if not name or not name.strip() or len(name.strip()) > 64:
        raise ValueError("名称不能为空且不超过64个字符")
    if role == "unit":
        from dispatch.orm import Unit

        if not unit_code or session.scalar(select(Unit.id).where(Unit.code == unit_code)) is None:
            raise ValueError("承办单位角色须用 --unit 指定派单目录中存在的单位编码")
    elif unit_code:
        raise ValueError("只有承办单位角色可以绑定单位")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name.strip(), role=role, token_hash=hash_token(token), unit_code=unit_code,
                         created_at=utcnow()))
    session.commit()
    return token


def revoke_token(session: Session, token_id: int) -> bool:
    row = session.get(ApiToken, token_id)
    if row is None or row.revoked_at is not None:
        return False
    row.revoked_at = utcnow()
    session.commit()
    return True


def authenticate(session: Session, token: str) -> Principal | None:
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    if row is None or row.revoked_at is not None:
        return None
    now = utcnow()
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
        row.last_used_at = now
        session.commit()
    return Principal(row.id, row.name, row.role, row.unit_code)


def current_principal(
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    session: Session = Depends(db_session),
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "未登录：请在 Authorization 头中提供 Bearer 令牌",
                            headers={"WWW-Authenticate": "Bearer"})
    principal = authenticate(session, credentials.credentials)
    if principal is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "令牌无效或已吊销", headers={"WWW-Authenticate": "Bearer"})
    return principal


def require_role(*roles: str):
    """FastAPI dependency factory: the request's principal, if its role is one of ``roles`` (else 403)."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {unknown}")

    def dependency(principal: Principal = Depends(current_principal)) -> Principal:
        if principal.role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                f"当前角色（{principal.role}）无权访问该接口，需要以下角色之一：{'、'.join(roles)}")
        return principal

    dependency.__name__ = f"require_role_{'_'.join(roles)}"
    return dependency


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api.auth", description="管理API令牌")
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create-token", help="创建令牌（只显示一次）")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--name", required=True)
    create.add_argument("--unit", default=None, help="承办单位编码（角色为 unit 时必填）")
    sub.add_parser("list-tokens", help="列出令牌（不含令牌本身）")
    revoke = sub.add_parser("revoke-token", help="吊销令牌")
    revoke.add_argument("--id", type=int, required=True)
    args = parser.parse_args(argv)

    session = session_factory()()
    try:
        if args.command == "create-token":
            try:
                token = create_token(session, args.role, args.name, args.unit)
            except ValueError as exc:
                print(f"错误：{exc}", file=sys.stderr)
                return 2
            print(token)
            print("请妥善保存，该令牌不会再次显示。", file=sys.stderr)
        elif args.command == "list-tokens":
            for row in session.scalars(select(ApiToken).order_by(ApiToken.id)):
                state = "已吊销" if row.revoked_at else "有效"
                print(f"{row.id}\t{row.role}\t{row.name}\t{row.unit_code or ''}\t{state}\t{row.created_at:%Y-%m-%d %H:%M}")
        else:
            ok = revoke_token(session, args.id)
            print("已吊销" if ok else "未找到该令牌或已吊销", file=sys.stderr)
            return 0 if ok else 1
    finally:
        session.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
