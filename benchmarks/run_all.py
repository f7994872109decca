"""``make bench``: run every benchmark and write its JSON to reports/benchmarks/ (the chat benchmark starts the system)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RASA_PYTHON = ROOT / ".venv" / "rasa" / "bin" / "python"
REDIS_URL = "redis://127.0.0.1:6379/1"
TWO_WORKERS = {"JSJB_RASA_WORKERS": "2", "JSJB_RASA_LOCK_STORE_URL": REDIS_URL}  # the production configuration
BENCHES = [  # (report name, module, arguments, Python: None = this services environment, environment variables)
    ("classifier_bench", "classifier_bench", [], None, {}),
    ("kb_bench", "kb_bench", [], None, {}),
    ("tracker_store_bench", "tracker_store_bench", [], RASA_PYTHON, {}),  # Rasa's stores live in the Rasa environment
    ("tracker_replay_bench", "tracker_replay_bench", [], RASA_PYTHON, {}),
    # capacity: 20 citizens with no think time; then the latency 20 people typing on their phones see
    ("chat_load", "chat_load", ["--start-system", "--concurrency", "20", "--duration", "60"], None, {}),
    ("chat_load_typing", "chat_load", ["--start-system", "--concurrency", "20", "--duration", "90", "--think", "3,12"],
     None, {}),
    # the targets' run: two Rasa workers with the Redis lock store, 20 citizens answering within 0.2-0.4 s
    ("chat_load_target", "chat_load", ["--start-system", "--concurrency", "20", "--warmup", "20", "--duration", "60",
                                       "--think", "0.2,0.4"], None, TWO_WORKERS),
]


def _redis_reachable() -> bool:
    """Whether the Redis the workers' lock store would use answers PING (as the tests check it)."""
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1).ping())
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return False


def main() -> int:
    out_dir = ROOT / "reports" / "benchmarks"
    out_dir.mkdir(parents=True, exist_ok=True)
    failed = []
    for name, module, args, python, env in BENCHES:
        if not (ROOT / "benchmarks" / f"{module}.py").exists():
            print(f"{name}: not present, skipped")
            continue
        if env.get("JSJB_RASA_LOCK_STORE_URL") == REDIS_URL and not _redis_reachable():
            print(f"{name}: needs Redis at {REDIS_URL} for the workers' lock store, skipped")
            continue
        print(f"\n=== {name}", flush=True)
        code = subprocess.run([str(python or sys.executable), "-m", f"benchmarks.{module}", *args,
                               "--out", str(out_dir / f"{name}.json")],
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env}).returncode
        if code:
            failed.append(name)
    print("\nfailed: " + ", ".join(failed) if failed else "\nall benchmarks ran; JSON in reports/benchmarks/")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
