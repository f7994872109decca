"""Reading the tracker: intents, entities, the citizen's words, and the intake summary (pure helpers, no I/O)."""
from __future__ import annotations

import re
from typing import Any, Dict, Iterable, List, Optional

from rasa_sdk import Tracker

from actions.services import UNKNOWN, mask_phone

# Intents that never fill a slot: the dialogue rules answer them (emergency, legal channel, cancel, handoff ...).
HARD_INTERRUPTS = frozenset(
    {"emergency", "legal_channel", "human_handoff", "cancel", "insult", "out_of_scope", "goodbye", "EXTERNAL_callback"}
)
# Intents that fill a free-text slot only when the text is substantive.
SOFT_INTERRUPTS = frozenset({"greet", "thanks", "chitchat", "bot_challenge", "status_query", "praise", "consult"})

INTAKE_SLOTS = (
    "request_type", "description", "address", "district", "street", "occurred_at", "contact_phone",
    "contact_name", "anonymous", "confidential", "confirmed",
)

REQUEST_TYPES = {"求助", "投诉", "举报", "建议"}

_ID_CARD = re.compile(r"(?<![0-9a-zA-Z])([1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[0-9Xx])(?![0-9a-zA-Z])")
_FILLER = re.compile(
    r"(你好|您好|喂|请问|麻烦|帮我|帮忙|我要|我想|想要|要|想|一下|个|反映|投诉|举报|求助|建议|提|意见|问题|事情|事儿|事|"
    r"登记|诉求|情况|有|一|的|了|啊|吧|呢|哈|嗯|这|那|就是|我|你们|你)"
)
_CJK = re.compile(r"[\u4e00-\u9fff]")
_NAME = re.compile(r"(?:我姓|免贵姓|姓)([\u4e00-\u9fff])(?![\u4e00-\u9fff]{3})|(?:我叫|我是|名字是|联系人)([\u4e00-\u9fff]{2,3})(?=$|[,，。.;；\s电手]|$)")


def latest_intent(tracker: Tracker) -> Optional[str]:
    return (tracker.latest_message.get("intent") or {}).get("name")


def latest_entities(tracker: Tracker, entity_type: str) -> List[Dict[str, Any]]:
    return [e for e in tracker.latest_message.get("entities") or [] if e.get("entity") == entity_type]


def last_entity_value(tracker: Tracker, entity_type: str) -> Optional[str]:
    values = latest_entities(tracker, entity_type)
    return values[-1].get("value") if values else None


def mask_ids(text: str) -> str:
    return _ID_CARD.sub(lambda m: m.group(1)[:3] + "*" * 11 + m.group(1)[-4:], text or "")


def has_id_number(tracker: Tracker) -> bool:
    return bool(latest_entities(tracker, "id_number")) or bool(_ID_CARD.search(citizen_text(tracker, masked=False)))


def citizen_text(tracker: Tracker, masked: bool = True) -> str:
    """The citizen's own words of the latest message (ID numbers masked)."""
    text = None
    for event in reversed(tracker.events or []):
        if event.get("event") == "user":
            text = event.get("text")
            break
    if text is None:
        text = tracker.latest_message.get("text") or ""
    text = (text or "").strip()
    return mask_ids(text) if masked else text


def normalized_text(tracker: Tracker) -> str:
    """The latest message as the NLU pipeline normalised it (simplified, half-width, lower-case)."""
    return tracker.latest_message.get("text") or ""


def content_length(text: str) -> int:
    """Number of Chinese characters left once greetings, request words and particles are removed."""
    return len(_CJK.findall(_FILLER.sub("", text or "")))


def is_substantive(text: str, minimum: int = 4) -> bool:
    return content_length(text) >= minimum


def request_type_of(tracker: Tracker) -> Optional[str]:
    value = last_entity_value(tracker, "request_type")
    return value if value in REQUEST_TYPES else None


def contact_name_in(text: str) -> Optional[str]:
    m = _NAME.search(text or "")
    if not m:
        return None
    if m.group(1):
        return m.group(1) + "先生/女士"
    return m.group(2)


def phone_tail_in(text: str) -> Optional[str]:
    digits = re.findall(r"(?<!\d)(\d{4})(?!\d)", text or "")
    return digits[-1] if digits else None


def slot_events_since_last_user(tracker: Tracker, names: Iterable[str]) -> List[Dict[str, Any]]:
    names = set(names)
    out: List[Dict[str, Any]] = []
    for event in reversed(tracker.events or []):
        if event.get("event") == "user":
            break
        if event.get("event") == "slot" and event.get("name") in names:
            out.append(event)
    return out


def requested_slot_before_last_user(tracker: Tracker) -> Optional[str]:
    """The slot the form had asked for when the citizen sent the latest message."""
    seen_user = False
    for event in reversed(tracker.events or []):
        if event.get("event") == "user":
            seen_user = True
            continue
        if seen_user and event.get("event") == "slot" and event.get("name") == "requested_slot":
            return event.get("value")
        if seen_user and event.get("event") == "active_loop" and not event.get("name"):
            return None
    return None


def place_line(slots: Dict[str, Any]) -> str:
    address = slots.get("address")
    district, street = slots.get("district"), slots.get("street")
    if not address or address == UNKNOWN:
        if district and district != UNKNOWN:
            return "，".join(x for x in (district, street) if x)
        return "不详"
    parts = [x for x in (district if district != UNKNOWN else None, street) if x]
    if parts and not all(part in address for part in parts):
        return f"{address}（{''.join(parts)}）"
    return address


def intake_summary(slots: Dict[str, Any]) -> str:
    """The read-back of the intake form (phone masked)."""
    lines = ["请核对您的诉求信息："]
    if slots.get("request_type"):
        lines.append(f"· 诉求类型：{slots['request_type']}")
    lines.append(f"· 问题描述：{slots.get('description') or '（未填写）'}")
    lines.append(f"· 发生地点：{place_line(slots)}")
    if slots.get("occurred_at"):
        lines.append(f"· 发生时间：{slots['occurred_at']}")
    if slots.get("anonymous"):
        lines.append("· 联系方式：匿名反映（承办单位无法向您反馈办理结果）")
    else:
        contact = mask_phone(slots.get("contact_phone")) if slots.get("contact_phone") else "未留"
        if slots.get("contact_name"):
            contact += f"（{slots['contact_name']}）"
        lines.append(f"· 联系电话：{contact}")
        lines.append(f"· 个人信息保密：{'是' if slots.get('confidential') else '否'}")
    return "\n".join(lines)
