#!/usr/bin/env python3
"""``make run``: set everything up (idempotent, cached) and start the whole system until Ctrl-C."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.system import System  # noqa: E402


def main() -> int:
    if "--no-setup" not in sys.argv:
        subprocess.run([sys.executable, str(ROOT / "scripts" / "setup.py")], check=True)
    system = System(api_port=int(os.environ.get("JSJB_API_PORT", 8000)), rasa_port=int(os.environ.get("JSJB_RASA_PORT", 5005)))
    print("\nstarting the Rasa server and the services app …", flush=True)
    system.start()

    def _stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        health = system.wait_ready()
        token_file = ROOT / "var" / "demo-tokens.txt"
        if (ROOT / ".venv" / "svc").exists():
            subprocess.run([str(ROOT / ".venv" / "svc" / "bin" / "python"), "-m", "api.demo_tokens",
                            "--out", str(token_file)], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print("\n接诉即办助手 is running:")
        print(f"  chat page (citizens)     {system.api_url}/")
        print(f"  API docs (agents, editors) {system.api_url}/docs")
        print(f"  health                   {system.api_url}/health  → {health['status']}")
        print(f"  Rasa server              {system.rasa_url}  (REST: /webhooks/rest/webhook, socket.io)")
        if token_file.exists():
            print(f"  demo role tokens         {token_file}")
        print("Press Ctrl-C to stop.", flush=True)
        while True:
            for name, proc in system.processes.items():
                if proc.poll() is not None:
                    print(f"{name} exited with code {proc.returncode}; stopping.", flush=True)
                    return 1
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopping …", flush=True)
        return 0
    finally:
        system.stop()
        print("stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
