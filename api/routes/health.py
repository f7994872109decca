"""Health: which parts of the system are up (database, Rasa server, models, knowledge-base index)."""
from __future__ import annotations

import time

import httpx
from fastapi import APIRouter
from sqlalchemy import text

from core.config import get_settings
from core.db import get_engine

router = APIRouter(tags=["health"])


def _check_database() -> dict:
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"up": True}
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return {"up": False, "error": str(exc)[:200]}


async def _check_rasa() -> dict:
    settings = get_settings()
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:
            resp = await client.get(f"{settings.rasa_url}/status")
        if resp.status_code == 200:
            body = resp.json()
            return {"up": True, "model": body.get("model_file", "").rsplit("/", 1)[-1]}
        # /status needs --enable-api; the root route always answers "Hello from Rasa"
        resp_root = await _rasa_root(settings.rasa_url)
        return {"up": resp_root, "detail": f"/status answered {resp.status_code}"}
    except httpx.HTTPError as exc:
        return {"up": False, "error": type(exc).__name__}


async def _rasa_root(url: str) -> bool:
    async with httpx.AsyncClient(timeout=2.0) as client:
        return (await client.get(url)).status_code == 200


def _check_folder(path) -> dict:
    return {"up": path.exists(), "path": str(path)}


@router.get("/health", summary="Which parts of the system are up")
async def health() -> dict:
    settings = get_settings()
    started = time.perf_counter()
    parts = {
        "api": {"up": True},
        "database": _check_database(),
        "rasa": await _check_rasa(),
        "encoder_model": _check_folder(settings.resolved_encoder_dir),
        "classifier_model": _check_folder(settings.resolved_classifier_dir),
        "kb_index": _check_folder(settings.resolved_kb_index_dir),
    }
    status = "ok" if all(p["up"] for p in parts.values()) else "degraded"
    return {"status": status, "parts": parts, "checked_in_ms": round((time.perf_counter() - started) * 1000, 1)}
