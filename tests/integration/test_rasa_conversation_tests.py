"""Rasa's own conversation tests (``bot/tests/*.yml``) run by ``rasa test`` against the real action endpoint.

Each capability of the intake bot (intake form, request types, special routes, status query, callback, handoff,
small talk) has test stories written with the citizen's own words; ``rasa test`` replays them through the trained
model (NLU + dialogue) and the services app's actions, and fails on any wrong prediction.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from scripts.system import System, rasa_model_path

ROOT = Path(__file__).resolve().parents[2]
STORIES = ROOT / "bot" / "tests"

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not any(STORIES.glob("test_*.yml")), reason="no conversation tests in bot/tests")]


def test_every_conversation_test_story_passes(system: System, tmp_path: Path):
    out = tmp_path / "results"
    env = {**os.environ, **system.process_env()}
    proc = subprocess.run(
        [str(ROOT / ".venv" / "rasa" / "bin" / "python"), "-m", "rasa", "test", "core",
         "--model", str(rasa_model_path(ROOT)), "--stories", "tests",
         "--endpoints", "endpoints.yml", "--out", str(out), "--fail-on-prediction-errors", "--no-plot"],
        cwd=ROOT / "bot", env=env, capture_output=True, text=True, timeout=1500,
    )
    failed = out / "failed_test_stories.yml"
    detail = failed.read_text() if failed.exists() else ""
    assert proc.returncode == 0, f"rasa test failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}\n{detail}"
    report = json.loads((out / "story_report.json").read_text()) if (out / "story_report.json").exists() else {}
    if report:
        assert report.get("conversation_accuracy", {}).get("accuracy", 1.0) == 1.0
