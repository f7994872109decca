#!/usr/bin/env python3
"""``make test``: set up (idempotent), then run every test stage and exit non-zero if any fails.

Stages:
1. services tests (Python 3.11): domain, API, knowledge base, classifier, encoder, integration
   (the integration tests start the Rasa server and the services app for real);
2. Rasa-environment tests (Python 3.10): NLU components, channels;
3. Rasa conversation tests: ``rasa test`` on bot/tests against the real action endpoint.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SVC_PY = ROOT / ".venv" / "svc" / "bin" / "python"
RASA_PY = ROOT / ".venv" / "rasa" / "bin" / "python"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2",
       "JSJB_ROOT": str(ROOT),
       # tests reuse the models set-up built instead of building their own
       "JSJB_ENCODER_DIR": str(ROOT / "var" / "models" / "encoder"),
       "JSJB_CLASSIFIER_DIR": str(ROOT / "var" / "models" / "classifier"),
       "JSJB_ONNX_QUERY_DIR": str(ROOT / "var" / "models" / "onnx-query")}
SUMMARY = re.compile(r"(\d+) passed|(\d+) failed|(\d+) error")
PYTEST_CLOSING = re.compile(r"^=*\s*(\d+ (passed|failed|skipped|errors?|deselected|xfailed|xpassed|warnings?)(, )?)+.* in [\d.]+s")


def stage(title: str, cmd: list, cwd: Path = ROOT, env: dict | None = None) -> tuple[int, int, int]:
    print(f"\n=== {title}\n$ {' '.join(map(str, cmd))}", flush=True)
    proc = subprocess.Popen([str(c) for c in cmd], cwd=cwd, env={**ENV, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    passed = failed = 0
    tail = ""
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        tail = line
        if PYTEST_CLOSING.match(line.strip()):
            for p, f, e in SUMMARY.findall(line):
                passed += int(p or 0)
                failed += int(f or 0) + int(e or 0)
    code = proc.wait()
    if code not in (0,) and failed == 0:
        failed = 1
    del tail
    return code, passed, failed


def main() -> int:
    started = time.perf_counter()
    if "--no-setup" not in sys.argv:
        subprocess.run([sys.executable, str(ROOT / "scripts" / "setup.py")], check=True)
    results = []
    results.append(("services tests", *stage("services tests (Python 3.11)",
                                             [SVC_PY, "-m", "pytest", "tests", "--ignore=tests/bot", "-q", "-ra"])))
    if (ROOT / "tests" / "bot").exists():
        results.append(("rasa-env tests", *stage("Rasa environment tests (Python 3.10)",
                                                 [RASA_PY, "-m", "pytest", "tests/bot", "-q", "-ra"])))
    total_passed = sum(r[2] for r in results)
    total_failed = sum(r[3] for r in results)
    print(f"\n=== summary ({time.perf_counter() - started:.0f} s)")
    for name, code, passed, failed in results:
        print(f"  {name:<22} exit {code}  passed {passed}  failed {failed}")
    print(f"{total_passed} passed, {total_failed} failed")
    return 0 if all(code == 0 for _, code, _, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
