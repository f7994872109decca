"""The services process: HTTP API, Rasa action endpoint and the chat page, on one FastAPI app (port 8000)."""
from __future__ import annotations

import html
import logging
import threading
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from api.routes import action_webhook, health
from core.config import PROJECT_ROOT, get_settings
from core.logging import configure_logging

STATIC_DIR = Path(__file__).resolve().parent / "static"
SOCKET_URL_SLOT = 'data-socket-url=""'  # in index.html; filled in when the page is served
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
logger = logging.getLogger(__name__)


def chat_socket_url(public_url: str, rasa_url: str, page_host: str | None) -> str:
    """The Rasa socket.io URL the chat page's browser connects to.

    ``rasa_public_url`` when set, else ``rasa_url``. A loopback Rasa address (the default set-up, both servers on one
    machine) means "the machine that served this page": the browser gets the host it used for the page instead, so
    the page also works when opened from another computer.
    """
    if public_url:
        return public_url.rstrip("/")
    parts = urlsplit(rasa_url)
    if page_host and parts.hostname in LOOPBACK_HOSTS and page_host not in LOOPBACK_HOSTS:
        host = f"[{page_host}]" if ":" in page_host else page_host
        netloc = f"{host}:{parts.port}" if parts.port else host
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts).rstrip("/")


@asynccontextmanager
async def lifespan(app: FastAPI):
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    logger.info("services starting", extra={"database": settings.sqlalchemy_url.split("@")[-1]})
    if settings.warmup_models:
        from actions.services import warm_up

        threading.Thread(target=warm_up, name="warm-up", daemon=True).start()
    yield


def create_app() -> FastAPI:
    app = FastAPI(
        title="接诉即办助手 API",
        version="0.1.0",
        description="Work orders, dispatch suggestions, knowledge base and the Rasa action endpoint of the 12345 assistant.",
        lifespan=lifespan,
    )
    app.include_router(health.router)
    app.include_router(action_webhook.router)
    # Domain routers register here (one module per area under api/routes/).
    from api.routes import citizens, stats, units, work_orders  # dispatch: work orders, units, citizens, rates

    for dispatch_router in (work_orders.router, units.router, citizens.router, stats.router):
        app.include_router(dispatch_router)
    from api.routes import open311  # Open311 GeoReport v2 over the dispatch core

    app.include_router(open311.router)
    from api.routes import knowledge  # knowledge base: public self-query and the editors' API

    app.include_router(knowledge.router)

    @app.get("/static/vendor/socket.io.min.js", include_in_schema=False)
    async def socketio_client() -> FileResponse:
        # the maintained socket.io client, installed from npm at set-up (package-lock.json pins it)
        path = PROJECT_ROOT / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js"
        if not path.exists():
            raise HTTPException(status_code=503, detail="socket.io client not installed: run `make setup`")
        return FileResponse(path, media_type="application/javascript")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/editor", include_in_schema=False)
    async def editor_page() -> FileResponse:
        # the knowledge-base editors' page (plain HTML/JS over /api/kb, token pasted by the editor)
        return FileResponse(STATIC_DIR / "editor.html", media_type="text/html; charset=utf-8",
                            headers={"Cache-Control": "no-cache"})

    @app.get("/", include_in_schema=False)
    async def chat_page(request: Request) -> HTMLResponse:
        settings = get_settings()
        url = chat_socket_url(settings.rasa_public_url, settings.rasa_url, request.url.hostname)
        page = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
        page = page.replace(SOCKET_URL_SLOT, f'data-socket-url="{html.escape(url, quote=True)}"', 1)
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    return app


app = create_app()
