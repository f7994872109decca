"""Start and stop the two server processes (standard library only).

Used by ``scripts/run.py`` (``make run``) and by the integration tests, so both exercise the same start-up.
- Rasa 3.6 server (Python 3.10 environment), REST + socket.io channels, HTTP API enabled;
- the services app (Python 3.11 environment): HTTP API, Rasa action endpoint (/webhook), chat page.

Several Rasa worker processes (``JSJB_RASA_WORKERS``, default 1) share Rasa's port; Rasa then needs a lock store that
all of them see, so that two messages of one conversation are never processed at the same time:
``JSJB_RASA_LOCK_STORE_URL=redis://HOST:6379/1`` adds a Redis ``lock_store`` (``bot.lock_store.AtomicRedisLockStore``:
atomic scripts, asyncio client) to ``bot/endpoints.yml`` (written to
``var/rasa-endpoints-<port>.yml``). One Rasa process uses one core; on the 2-core reference machine two workers carry
1.7x the turns per second of one (``benchmarks/README.md``).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent


def rasa_model_path(root: Path = ROOT) -> Path:
    """The trained Rasa model to serve: ``$JSJB_RASA_MODEL`` (e.g. one just trained into /tmp) or the one
    ``make setup`` built (``var/models/rasa/bot.tar.gz``)."""
    override = os.environ.get("JSJB_RASA_MODEL")
    return Path(override) if override else root / "var" / "models" / "rasa" / "bot.tar.gz"


def _get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback only
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def redis_lock_store_block(url: str, key_prefix: str = "jsjb") -> str:
    """The ``lock_store`` section of Rasa's endpoints for a ``redis://[:password@]host[:port][/db]`` URL."""
    parsed = urlparse(url)
    if parsed.scheme not in ("redis", "rediss") or not parsed.hostname:
        raise ValueError(f"JSJB_RASA_LOCK_STORE_URL must look like redis://HOST:6379/1, not {url!r}")
    db = (parsed.path or "/1").lstrip("/") or "1"
    if not db.isdigit():
        raise ValueError(f"JSJB_RASA_LOCK_STORE_URL: the database must be a number, not {db!r}")
    lines = ["", "# added by scripts/system.py for several Rasa workers (JSJB_RASA_LOCK_STORE_URL)", "lock_store:",
             "  type: bot.lock_store.AtomicRedisLockStore", f'  url: "{parsed.hostname}"', f"  port: {parsed.port or 6379}", f"  db: {db}",
             f'  key_prefix: "{key_prefix}"']
    if parsed.password:
        lines.append(f'  password: "{parsed.password}"')
    if parsed.scheme == "rediss":
        lines.append("  use_ssl: true")
    return "\n".join(lines) + "\n"


@dataclass
class System:
    root: Path = ROOT
    api_port: int = 8000
    rasa_port: int = 5005
    host: str = "127.0.0.1"
    env: dict[str, str] = field(default_factory=dict)
    log_dir: Path | None = None
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    @property
    def rasa_url(self) -> str:
        return f"http://{self.host}:{self.rasa_port}"

    def _setting(self, name: str, default: str = "") -> str:
        return self.env.get(name, os.environ.get(name, default))

    @property
    def rasa_workers(self) -> int:
        raw = self._setting("JSJB_RASA_WORKERS", "1")
        try:
            workers = int(raw)
        except ValueError:
            raise ValueError(f"JSJB_RASA_WORKERS must be a whole number, not {raw!r}") from None
        if workers < 1:
            raise ValueError("JSJB_RASA_WORKERS must be at least 1")
        return workers

    def rasa_endpoints(self) -> Path:
        """``bot/endpoints.yml``, or a copy with a Redis lock store when one is configured."""
        base = self.root / "bot" / "endpoints.yml"
        url = self._setting("JSJB_RASA_LOCK_STORE_URL")
        if self.rasa_workers > 1 and not url:
            raise RuntimeError("several Rasa workers (JSJB_RASA_WORKERS > 1) need a shared lock store: set "
                               "JSJB_RASA_LOCK_STORE_URL=redis://HOST:6379/1")
        if not url:
            return base
        prefix = self._setting("JSJB_RASA_LOCK_KEY_PREFIX", "jsjb")
        out = Path(self._setting("JSJB_DATA_DIR", str(self.root / "var"))) / f"rasa-endpoints-{self.rasa_port}.yml"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(base.read_text(encoding="utf-8") + redis_lock_store_block(url, prefix), encoding="utf-8")
        return out

    def process_env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": str(self.root),
            "RASA_TELEMETRY_ENABLED": "false",
            "JSJB_ROOT": str(self.root),
            "JSJB_RASA_URL": self.rasa_url,
            "JSJB_ACTION_ENDPOINT": f"{self.api_url}/webhook",
            "JSJB_RASA_TRACKER_DB": os.environ.get("JSJB_RASA_TRACKER_DB", str(self.root / "var" / "rasa_tracker.db")),
            "RASA_CACHE_DIRECTORY": os.environ.get("RASA_CACHE_DIRECTORY", "/tmp/rasa-cache"),
            "TF_CPP_MIN_LOG_LEVEL": "2",
            # Rasa and the services share the cores: spinning OpenMP threads collapse torch latency under contention
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
            # load the models at start-up, not when the first citizen writes (actions.services.warm_up)
            "JSJB_WARMUP_MODELS": os.environ.get("JSJB_WARMUP_MODELS", "1"),
            # Rasa forks this many Sanic workers (it refuses more than one without a shared lock store)
            "SANIC_WORKERS": str(self.rasa_workers),
            **self.env,
        }

    def _spawn(self, name: str, cmd: list[str], cwd: Path | None = None) -> None:
        out = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child's lifetime
        self.processes[name] = subprocess.Popen(
            cmd, cwd=cwd or self.root, env=self.process_env(), stdout=out, stderr=subprocess.STDOUT if out else None,
            start_new_session=True,
        )

    def start(self) -> None:
        venv = self.root / ".venv"
        model = rasa_model_path(self.root)
        if not model.exists():
            raise RuntimeError(f"no Rasa model at {model}: run `make setup` first")
        endpoints = self.rasa_endpoints()
        self._spawn("services", [
            str(venv / "svc" / "bin" / "python"), "-m", "uvicorn", "api.main:app",
            "--host", self.host, "--port", str(self.api_port), "--no-access-log",
        ])
        self._spawn("rasa", [
            str(venv / "rasa" / "bin" / "python"), "-m", "bot.server", "run",  # = `rasa run` + bot/server.py's fix
            "--model", str(model), "--enable-api", "--cors", "*",
            "--credentials", "credentials.yml", "--endpoints", str(endpoints),
            "--interface", self.host, "--port", str(self.rasa_port),
        ], cwd=self.root / "bot")

    def wait_ready(self, timeout: float = 240.0) -> dict:
        """Block until the API's /health reports the Rasa server up; raise if a process dies or time runs out."""
        deadline = time.monotonic() + timeout
        last: dict = {}
        while time.monotonic() < deadline:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with code {proc.returncode} during start-up")
            status, body = _get(f"{self.api_url}/health")
            if status == 200:
                last = json.loads(body)
                if last["parts"]["rasa"]["up"]:
                    return last
            time.sleep(1.0)
        raise TimeoutError(f"system not ready after {timeout:.0f} s; last health: {last}")

    def stop(self, grace: float = 15.0) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace
        for proc in self.processes.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.processes.clear()

    def __enter__(self) -> "System":
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
