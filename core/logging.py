"""Structured (JSON) logging in which citizens' phone numbers and ID-card numbers never appear in clear."""
from __future__ import annotations

import json
import logging
import re
import sys
from datetime import datetime, timezone

# 18-digit resident ID (last char may be X) and 11-digit mainland mobile numbers, not inside longer digit runs.
_ID_CARD = re.compile(r"(?<![0-9])([1-9]\d{5})(\d{8})(\d{3}[0-9Xx])(?![0-9])")
_MOBILE = re.compile(r"(?<![0-9])(1[3-9]\d)(\d{4})(\d{4})(?![0-9])")
_LANDLINE = re.compile(r"(?<![0-9])(0\d{2,3}-?)(\d{4})(\d{3,4})(?![0-9])")


def mask_pii(text: str) -> str:
    """Mask ID-card numbers (keep region prefix and last 4), mobile and landline numbers (keep last 4)."""
    if not text:
        return text
    text = _ID_CARD.sub(lambda m: m.group(1)[:3] + "*" * 11 + m.group(3)[-4:], text)
    text = _MOBILE.sub(lambda m: m.group(1) + "****" + m.group(3), text)
    text = _LANDLINE.sub(lambda m: m.group(1) + "****" + m.group(3), text)
    return text


class MaskingJsonFormatter(logging.Formatter):
    """One JSON object per line; message, arguments and extra fields pass through :func:`mask_pii`."""

    _RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": datetime.fromtimestamp(record.created, tz=timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": mask_pii(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in self._RESERVED and not key.startswith("_"):
                payload[key] = mask_pii(value) if isinstance(value, str) else value
        if record.exc_info:
            payload["exc"] = mask_pii(self.formatException(record.exc_info))
        return json.dumps(payload, ensure_ascii=False, default=str)


class MaskingTextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return mask_pii(super().format(record))


def configure_logging(level: str = "INFO", json_lines: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        MaskingJsonFormatter() if json_lines else MaskingTextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "urllib3", "filelock", "sentence_transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
