"""An entry's content: the fields an editor writes, their validation, and what the search index takes from them."""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from knowledge_base.index import IndexedEntry
from knowledge_base.text import normalise, tokens

CONTENT_FIELDS = ("question", "alternatives", "answer", "department", "region", "source", "effective_from",
                  "review_by", "expires_on", "tags", "counter_examples")
DATE_FIELDS = ("effective_from", "review_by", "expires_on")
LIST_FIELDS = ("alternatives", "tags", "counter_examples")
TEXT_LIST_FIELDS = ("alternatives", "counter_examples")  # one item per line in CSV/XLSX cells
SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,119}$")
LIMITS = {"question": 300, "answer": 5000, "department": 200, "region": 50, "source": 300}
MAX_ALTERNATIVES = 50
MAX_ALTERNATIVE_LEN = 300
MAX_TAGS = 30
MAX_TAG_LEN = 50
DEFAULTS: dict[str, Any] = {"alternatives": [], "department": "", "region": "北京市", "source": "",
                            "effective_from": None, "review_by": None, "expires_on": None, "tags": [],
                            "counter_examples": []}


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str  # Simplified Chinese: editors read it


class ContentError(ValueError):
    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("；".join(f"{e.field}: {e.message}" for e in errors))


def new_slug() -> str:
    return "kb-" + uuid.uuid4().hex[:10]


def check_slug(slug: str) -> list[FieldError]:
    if not isinstance(slug, str) or not SLUG_RE.match(slug):
        return [FieldError("id", "编号只能由小写字母、数字和连字符组成（以字母或数字开头，不超过120个字符）")]
    return []


def _as_date(value: Any, name: str, errors: list[FieldError]) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            pass
    errors.append(FieldError(name, f"日期格式应为 YYYY-MM-DD，收到“{value}”"))
    return None


def _as_list(value: Any, name: str, errors: list[FieldError]) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        parts = re.split(r"[\n|]" if name in TEXT_LIST_FIELDS else r"[\n|,，、;；]", value)
    elif isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        errors.append(FieldError(name, "应为文字列表"))
        return []
    out: list[str] = []
    for part in parts:
        if part is None:
            continue
        text = str(part).strip()
        if text and text not in out:
            out.append(text)
    return out


def clean_content(data: dict[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """Validate and normalise content fields; raises :class:`ContentError` listing every problem.

    With ``partial`` only the given fields are checked (an edit); otherwise missing optional fields get defaults.
    Unknown keys are rejected so a typo never silently drops a change.
    """
    errors: list[FieldError] = []
    unknown = set(data) - set(CONTENT_FIELDS)
    for name in sorted(unknown):
        errors.append(FieldError(name, "未知字段"))
    out: dict[str, Any] = {}
    for name in CONTENT_FIELDS:
        if name not in data:
            if not partial:
                if name in ("question", "answer"):
                    errors.append(FieldError(name, "必填"))
                else:
                    out[name] = DEFAULTS[name] if not isinstance(DEFAULTS[name], list) else []
            continue
        value = data[name]
        if name in DATE_FIELDS:
            out[name] = _as_date(value, name, errors)
        elif name in LIST_FIELDS:
            items = _as_list(value, name, errors)
            limit, item_len = (MAX_ALTERNATIVES, MAX_ALTERNATIVE_LEN) if name in TEXT_LIST_FIELDS else (MAX_TAGS,
                                                                                                        MAX_TAG_LEN)
            if len(items) > limit:
                errors.append(FieldError(name, f"最多{limit}项"))
            if any(len(i) > item_len for i in items):
                errors.append(FieldError(name, f"每项不超过{item_len}个字符"))
            out[name] = items
        else:
            text = "" if value is None else str(value).strip()
            if name in ("question", "answer") and not text:
                errors.append(FieldError(name, "不能为空"))
            if len(text) > LIMITS[name]:
                errors.append(FieldError(name, f"不超过{LIMITS[name]}个字符"))
            if name == "region" and not text:
                text = DEFAULTS["region"]
            out[name] = text
    if "question" in out and "alternatives" in out:
        q = normalise(out["question"])
        out["alternatives"] = [a for a in out["alternatives"] if normalise(a) != q]
    if "counter_examples" in out and "question" in out:  # a partial edit is checked again on the merged content
        own = set(phrasings(out))
        clash = [c for c in out["counter_examples"] if normalise(c) in own]
        if clash:
            errors.append(FieldError("counter_examples", f"反例问法不能与本条的标准问或相似问相同：{clash[0]}"))
    if out.get("effective_from") and out.get("expires_on") and out["expires_on"] < out["effective_from"]:
        errors.append(FieldError("expires_on", "失效日期早于生效日期"))
    if errors:
        raise ContentError(errors)
    return out


def to_json(content: dict[str, Any]) -> dict[str, Any]:
    """Content as stored in a version row (dates as ISO strings)."""
    return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in content.items()}


def from_json(content: dict[str, Any]) -> dict[str, Any]:
    out = dict(content)
    for name in DATE_FIELDS:
        if isinstance(out.get(name), str):
            out[name] = date.fromisoformat(out[name])
    return out


def phrasings(content: dict[str, Any]) -> tuple[str, ...]:
    """The standard question and the alternatives, normalised, without duplicates (one dense row each)."""
    seen: dict[str, None] = {}
    for text in [content["question"], *content.get("alternatives", [])]:
        t = normalise(text)
        if t:
            seen.setdefault(t, None)
    return tuple(seen)


def counter_examples(content: dict[str, Any]) -> tuple[str, ...]:
    """Questions this entry does *not* answer although they look like it (editors' near misses), normalised."""
    seen: dict[str, None] = {}
    for text in content.get("counter_examples") or []:
        t = normalise(text)
        if t:
            seen.setdefault(t, None)
    return tuple(seen)


def lexical_tokens(content: dict[str, Any]) -> tuple[str, ...]:
    """BM25 document: tokens of question, alternatives and tags (adding the answer measured no better)."""
    parts = [content["question"], *content.get("alternatives", []), *map(str, content.get("tags", []))]
    return tuple(tokens(" ".join(parts)))


def indexed_entry(slug: str, version: int, content: dict[str, Any]) -> IndexedEntry:
    return IndexedEntry(slug=slug, version=version, phrasings=phrasings(content), answer=normalise(content["answer"]),
                        lexical_tokens=lexical_tokens(content), counter_examples=counter_examples(content))
