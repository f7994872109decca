"""Fixtures of the end-to-end tests: both servers started for real on free ports, on a fresh database."""
from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from scripts.system import System, rasa_model_path

ROOT = Path(__file__).resolve().parents[2]
RASA_MODEL = rasa_model_path(ROOT)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def system_env(data: Path) -> dict[str, str]:
    """Settings for a system of its own in ``data`` (databases, index) with the models set-up built."""
    return {
        "JSJB_DATA_DIR": str(data),
        "JSJB_DATABASE_URL": f"sqlite:///{data / 'jsjb.db'}",
        "JSJB_KB_INDEX_DIR": str(data / "kb_index"),
        "JSJB_ENCODER_DIR": str(ROOT / "var" / "models" / "encoder"),
        "JSJB_CLASSIFIER_DIR": str(ROOT / "var" / "models" / "classifier"),
        "JSJB_ONNX_QUERY_DIR": str(ROOT / "var" / "models" / "onnx-query"),
        "JSJB_RASA_TRACKER_DB": str(data / "rasa_tracker.db"),
        "JSJB_LOG_JSON": "true",
    }


@pytest.fixture(scope="session")
def system(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("e2e")
    env = system_env(data)
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    python = str(ROOT / ".venv" / "svc" / "bin" / "python")
    subprocess.run([python, "-m", "core.manage", "init-db"], cwd=ROOT, env=full_env, check=True,
                   stdout=subprocess.DEVNULL)
    if (ROOT / "knowledge_base" / "cli.py").exists():
        subprocess.run([python, "-m", "knowledge_base.cli", "ensure-index"], cwd=ROOT, env=full_env, check=True,
                       stdout=subprocess.DEVNULL)
    sys_ = System(api_port=_free_port(), rasa_port=_free_port(), env=env, log_dir=data / "logs")
    with sys_:
        yield sys_
    for name in ("services", "rasa"):
        log = data / "logs" / f"{name}.log"
        if log.exists():
            assert "13800001111" not in log.read_text(errors="replace"), f"{name} log holds a phone number in clear"


@pytest.fixture(scope="session")
def agent_token(system: System) -> str:
    from api.auth import create_token
    from core.db import make_engine, session_factory

    engine = make_engine(system.env["JSJB_DATABASE_URL"])
    with session_factory(engine)() as session:
        token = create_token(session, "agent", "集成测试坐席")
    engine.dispose()
    return token
