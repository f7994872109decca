"""The Rasa action endpoint, served in-process so models load once (rasa_sdk's executor, FastAPI transport).

Rasa's ``endpoints.yml`` points ``action_endpoint.url`` at ``http://127.0.0.1:8000/webhook``; responses and
error codes follow ``rasa_sdk.endpoint`` exactly (400 rejection, 404 unknown action, 449 missing domain).
"""
from __future__ import annotations

import json
import logging
import time
import zlib
from collections import defaultdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from rasa_sdk import utils as sdk_utils
from rasa_sdk.executor import ActionExecutor
from rasa_sdk.interfaces import ActionExecutionRejection, ActionMissingDomainException, ActionNotFoundException

logger = logging.getLogger(__name__)
router = APIRouter(tags=["rasa-actions"])

_executor: ActionExecutor | None = None
# per-action call counts and total time, for the load benchmark's "where the time goes" (GET /metrics/actions)
_timings: dict[str, dict[str, float]] = defaultdict(lambda: {"count": 0, "total_ms": 0.0})
# calls that carried the whole domain (Rasa sends it until this server has it: bot/action_client.py)
_received = {"domain_payloads": 0}


def get_executor() -> ActionExecutor:
    global _executor
    if _executor is None:
        executor = ActionExecutor()
        try:
            executor.register_package("actions")
        except SystemExit as exc:  # rasa_sdk exits the process when a package fails to import
            raise RuntimeError("the Rasa custom actions (package `actions`) failed to import; see the log") from exc
        _executor = executor
    return _executor


@router.get("/actions", summary="List the registered Rasa custom actions")
async def list_actions() -> list[dict[str, Any]]:
    return [item.model_dump() for item in get_executor().list_actions()]


@router.post("/webhook", summary="Rasa action server webhook")
async def webhook(request: Request) -> JSONResponse:
    raw = await request.body()
    try:
        if request.headers.get("Content-Encoding") == "deflate":
            raw = zlib.decompress(raw)
        action_call = json.loads(raw) if raw else None
    except (zlib.error, json.JSONDecodeError):
        action_call = None
    if not isinstance(action_call, dict):
        return JSONResponse({"error": "Invalid body request"}, status_code=400)
    sdk_utils.check_version_compatibility(action_call.get("version"))
    _received["domain_payloads"] += bool(action_call.get("domain"))
    started = time.perf_counter()
    try:
        result = await get_executor().run(action_call)
    except ActionExecutionRejection as exc:
        return JSONResponse({"error": exc.message, "action_name": exc.action_name}, status_code=400)
    except ActionNotFoundException as exc:
        logger.error("unknown action %s", exc.action_name)
        return JSONResponse({"error": exc.message, "action_name": exc.action_name}, status_code=404)
    except ActionMissingDomainException as exc:
        return JSONResponse({"error": exc.message, "action_name": exc.action_name}, status_code=449)
    stats = _timings[str(action_call.get("next_action"))]
    stats["count"] += 1
    stats["total_ms"] += (time.perf_counter() - started) * 1000
    return JSONResponse(result.model_dump() if result else None, status_code=200)


@router.get("/metrics/actions", summary="Call counts and total time per custom action since start-up")
async def action_metrics() -> dict:
    return {"actions": {name: dict(stats) for name, stats in sorted(_timings.items())},
            **_received}
