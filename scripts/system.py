"""Start and stop the two server processes (standard library only).

Used by ``scripts/run.py`` (``make run``) and by the integration tests, so both exercise the same start-up.
- Rasa 3.6 server (Python 3.10 environment), REST + socket.io channels, HTTP API enabled;
- the services app (Python 3.11 environment): HTTP API, Rasa action endpoint (/webhook), chat page.
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
        self._spawn("services", [
            str(venv / "svc" / "bin" / "python"), "-m", "uvicorn", "api.main:app",
            "--host", self.host, "--port", str(self.api_port), "--no-access-log",
        ])
        self._spawn("rasa", [
            str(venv / "rasa" / "bin" / "python"), "-m", "bot.server", "run",  # = `rasa run` + bot/server.py's fix
            "--model", str(model), "--enable-api", "--cors", "*",
            "--credentials", "credentials.yml", "--endpoints", "endpoints.yml",
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
