"""How every benchmark hands over its figures: JSON on standard output, and the same in the ``--out`` file."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional


def emit(result: Any, out: Optional[Path] = None) -> None:
    text = json.dumps(result, ensure_ascii=False, indent=2)
    print(text, flush=True)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
