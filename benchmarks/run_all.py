"""``make bench``: run every benchmark and write its JSON to reports/benchmarks/ (the chat benchmark starts the system)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RASA_PYTHON = ROOT / ".venv" / "rasa" / "bin" / "python"
BENCHES = [  # (report name, module, arguments, Python: None = this services environment)
    ("classifier_bench", "classifier_bench", [], None),
    ("kb_bench", "kb_bench", [], None),
    ("tracker_store_bench", "tracker_store_bench", [], RASA_PYTHON),  # Rasa's stores live in the Rasa environment
    # capacity: 20 citizens with no think time; then the latency 20 people typing on their phones see
    ("chat_load", "chat_load", ["--start-system", "--concurrency", "20", "--duration", "60"], None),
    ("chat_load_typing", "chat_load", ["--start-system", "--concurrency", "20", "--duration", "90", "--think", "3,12"],
     None),
]


def main() -> int:
    out_dir = ROOT / "reports" / "benchmarks"
    out_dir.mkdir(parents=True, exist_ok=True)
    failed = []
    for name, module, args, python in BENCHES:
        if not (ROOT / "benchmarks" / f"{module}.py").exists():
            print(f"{name}: not present, skipped")
            continue
        print(f"\n=== {name}", flush=True)
        code = subprocess.run([str(python or sys.executable), "-m", f"benchmarks.{module}", *args,
                               "--out", str(out_dir / f"{name}.json")],
                              cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}).returncode
        if code:
            failed.append(name)
    print("\nfailed: " + ", ".join(failed) if failed else "\nall benchmarks ran; JSON in reports/benchmarks/")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
