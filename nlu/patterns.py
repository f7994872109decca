"""Pattern entities in normalised text: phone numbers, ID-card numbers (masked), work-order numbers, dates/times.

Pure Python (stdlib only). ``find_patterns(text, now)`` returns Rasa-style entity dicts:

- ``phone_number``: mobile ``1[3-9]\\d{9}`` (spaces/dashes allowed between groups) and Beijing landlines (``010-``
  + 8 digits, or an 8-digit local number right after 电话/座机/号码); value = digits only (``13812345678``,
  ``010-62345678``).
- ``id_number``: 18-digit resident ID (last character may be X). Detected only so it can be masked: the value is
  the masked form (``110***********123X``), never the number. Digits inside an ID are not read as a phone number.
- ``work_order_number``: ``YYYYMMDD-NNNNNN`` with a plausible date (``20261122-000123``).
- ``date_time``: Chinese absolute and relative expressions (``昨天``, ``上周三``, ``晚上十点``, ``11月20号下午3点半``,
  ``前天夜里``, ``三天前``); value = the expression, ``metadata`` = ``{"date": "YYYY-MM-DD"|None,
  "time": "HH:MM"|None, "approximate": bool}`` resolved against ``now`` (Asia/Shanghai).
"""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any, Dict, List, Optional, Tuple

try:
    from zoneinfo import ZoneInfo

    BEIJING = ZoneInfo("Asia/Shanghai")
except Exception:  # pragma: no cover - no tz database
    from datetime import timezone

    BEIJING = timezone(timedelta(hours=8))

ID_CARD = re.compile(r"(?<![0-9a-z])([1-9]\d{5}(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[0-9x])(?![0-9a-z])",
                     re.IGNORECASE)
MOBILE = re.compile(r"(?<![0-9])(?:\+?86[- ]?)?(1[3-9]\d)[- ]?(\d{4})[- ]?(\d{4})(?![0-9])")
LANDLINE = re.compile(r"(?<![0-9])(?:\(?010\)?[- ]?)([2-9]\d{7})(?![0-9])")
LOCAL_AFTER_KEYWORD = re.compile(r"(?:电话|座机|号码|手机|联系方式)(?:是|为|:|号)?\s?([2-9]\d{7})(?![0-9])")
WORK_ORDER = re.compile(r"(?<![0-9])((?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]))\s?-\s?(\d{6})(?![0-9])")

_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_NUM = r"(?:\d{1,2}|[零〇一二两三四五六七八九十]{1,3})"
_WEEKDAY = {"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6, "末": 5}
_DAY_WORDS = {"今天": 0, "今日": 0, "今儿": 0, "今晚": 0, "今早": 0, "昨天": -1, "昨日": -1, "昨儿": -1, "昨晚": -1,
              "前天": -2, "前日": -2, "大前天": -3, "明天": 1, "明日": 1, "明早": 1, "明晚": 1, "后天": 2, "大后天": 3}
_PERIODS = {"凌晨": (0, 6), "早上": (5, 10), "早晨": (5, 10), "清晨": (5, 8), "上午": (6, 12), "中午": (11, 14),
            "下午": (12, 19), "傍晚": (17, 20), "晚上": (18, 24), "夜里": (20, 29), "半夜": (22, 29), "深夜": (22, 29),
            "夜间": (20, 29), "今晚": (18, 24), "昨晚": (18, 24), "明晚": (18, 24), "今早": (5, 10), "明早": (5, 10)}

_DAY = r"(?:大前天|大后天|前天|后天|今天|今日|今儿|昨天|昨日|昨儿|明天|明日|今晚|昨晚|明晚|今早|明早)"
_WEEK = r"(?:(?:上上|上|这|本|下)(?:个)?)?(?:周|星期|礼拜)[一二三四五六日天末]"
_MONTH_DAY = rf"(?:(?:\d{{4}}年)?{_NUM}月{_NUM}(?:日|号))"
_BARE_DAY = rf"(?:(?:这个月|本月|上个月|上月)?{_NUM}(?:日|号))"
_AGO = rf"(?:{_NUM}|几|半)(?:天|个星期|周|个月)(?:前|以前|之前)"
_VAGUE = r"(?:前几天|这几天|最近几天|上周|上个星期|上星期|这周|本周|上个月|这个月|本月|最近|刚才|刚刚|每天|天天|每晚)"
_PERIOD = r"(?:凌晨|早上|早晨|清晨|上午|中午|下午|傍晚|晚上|夜里|半夜|深夜|夜间)"
_CLOCK = rf"(?:{_NUM}(?:点|:|：)(?:{_NUM}分?|半|一刻|三刻|钟)?(?:左右|多)?)"
_DATE_PART = rf"(?:{_DAY}|{_WEEK}|{_MONTH_DAY}|{_BARE_DAY}|{_AGO}|{_VAGUE})"
DATE_TIME = re.compile(
    rf"(?:{_DATE_PART}(?:的)?(?:{_PERIOD})?(?:{_CLOCK})?|{_PERIOD}{_CLOCK}?|{_CLOCK})"
)


def cn_number(token: str) -> Optional[int]:
    """``十`` → 10, ``二十三`` → 23, ``两`` → 2, ``07`` → 7."""
    if token.isdigit():
        return int(token)
    if not token:
        return None
    if "十" in token:
        head, _, tail = token.partition("十")
        tens = _CN_DIGITS.get(head, None) if head else 1
        ones = _CN_DIGITS.get(tail, None) if tail else 0
        if tens is None or ones is None:
            return None
        return tens * 10 + ones
    if all(c in _CN_DIGITS for c in token):
        value = 0
        for c in token:
            value = value * 10 + _CN_DIGITS[c]
        return value
    return None


def mask_id(number: str) -> str:
    return number[:3] + "*" * 11 + number[-4:]


def _span_overlaps(spans: List[Tuple[int, int]], start: int, end: int) -> bool:
    return any(s < end and start < e for s, e in spans)


def _resolve_date(expr: str, now: datetime) -> Tuple[Optional[date], bool]:
    today = now.date()
    for word, offset in sorted(_DAY_WORDS.items(), key=lambda kv: -len(kv[0])):
        if word in expr:
            return today + timedelta(days=offset), False
    m = re.search(r"(上上|上|这|本|下)?(?:个)?(?:周|星期|礼拜)([一二三四五六日天末])", expr)
    if m:
        shift = {"上上": -2, "上": -1, "这": 0, "本": 0, "下": 1, None: 0}[m.group(1)]
        monday = today - timedelta(days=today.weekday()) + timedelta(weeks=shift)
        day = monday + timedelta(days=_WEEKDAY[m.group(2)])
        if m.group(1) is None and day > today:  # a bare "周三" in a report means the last one
            day -= timedelta(weeks=1)
        return day, m.group(2) == "末"
    m = re.search(rf"(?:(\d{{4}})年)?({_NUM})月({_NUM})(?:日|号)", expr)
    if m:
        year = int(m.group(1)) if m.group(1) else today.year
        month, day_ = cn_number(m.group(2)), cn_number(m.group(3))
        try:
            d = date(year, month or 0, day_ or 0)
        except ValueError:
            return None, True
        if not m.group(1) and d > today + timedelta(days=31):
            d = d.replace(year=year - 1)
        return d, False
    m = re.search(rf"(这个月|本月|上个月|上月)?({_NUM})(?:日|号)", expr)
    if m:
        day_ = cn_number(m.group(2)) or 0
        month_start = today.replace(day=1)
        if m.group(1) in ("上个月", "上月"):
            month_start = (month_start - timedelta(days=1)).replace(day=1)
        try:
            d = month_start.replace(day=day_)
        except ValueError:
            return None, True
        if m.group(1) is None and d > today:
            d = (month_start - timedelta(days=1)).replace(day=1)
            try:
                d = d.replace(day=day_)
            except ValueError:
                return None, True
        return d, False
    m = re.search(rf"({_NUM}|几|半)(天|个星期|周|个月)(?:前|以前|之前)", expr)
    if m:
        n = {"几": 3, "半": 0.5}.get(m.group(1)) or cn_number(m.group(1)) or 0
        days = {"天": 1, "个星期": 7, "周": 7, "个月": 30}[m.group(2)] * n
        return today - timedelta(days=days), m.group(1) in ("几", "半") or m.group(2) == "个月"
    if any(w in expr for w in ("前几天", "这几天", "最近几天")):
        return today - timedelta(days=3), True
    if any(w in expr for w in ("上周", "上个星期", "上星期")):
        return today - timedelta(days=today.weekday() + 7), True
    if any(w in expr for w in ("这周", "本周")):
        return today - timedelta(days=today.weekday()), True
    if "上个月" in expr:
        return (today.replace(day=1) - timedelta(days=1)).replace(day=1), True
    if any(w in expr for w in ("这个月", "本月")):
        return today.replace(day=1), True
    if any(w in expr for w in ("刚才", "刚刚")):
        return today, False
    return None, True


def _resolve_time(expr: str) -> Optional[str]:
    period = next((p for p in sorted(_PERIODS, key=len, reverse=True) if p in expr), None)
    m = re.search(rf"({_NUM})(?:点|:|：)({_NUM}分?|半|一刻|三刻|钟)?", expr)
    if not m:
        if period:
            lo, hi = _PERIODS[period]
            return f"{((lo + hi) // 2) % 24:02d}:00"
        return None
    hour = cn_number(m.group(1))
    if hour is None or hour > 24:
        return None
    minute_token = (m.group(2) or "").rstrip("分")
    minute = {"半": 30, "一刻": 15, "三刻": 45, "钟": 0, "": 0}.get(minute_token)
    if minute is None:
        minute = cn_number(minute_token) or 0
    if period in ("凌晨",) and hour == 12:
        hour = 0
    elif period in ("下午", "傍晚") and hour < 12:
        hour += 12
    elif period in ("晚上", "今晚", "昨晚", "明晚") and 5 <= hour < 12:
        hour += 12
    elif period in ("夜里", "半夜", "深夜", "夜间") and 6 <= hour < 12:
        hour += 12
    elif period == "中午" and hour < 5:
        hour += 12
    hour %= 24
    if minute > 59:
        return None
    return f"{hour:02d}:{minute:02d}"


def find_patterns(text: str, now: Optional[datetime] = None) -> List[Dict[str, Any]]:
    """All pattern entities in ``text`` (normalised by :func:`nlu.text.normalize`), sorted by position."""
    now = now or datetime.now(BEIJING)
    entities: List[Dict[str, Any]] = []
    taken: List[Tuple[int, int]] = []

    for m in ID_CARD.finditer(text):
        entities.append(_ent("id_number", m.start(), m.end(), mask_id(m.group(1).upper())))
        taken.append(m.span())
    for m in WORK_ORDER.finditer(text):
        if _span_overlaps(taken, *m.span()):
            continue
        entities.append(_ent("work_order_number", m.start(), m.end(), f"{m.group(1)}-{m.group(2)}"))
        taken.append(m.span())
    for m in MOBILE.finditer(text):
        if _span_overlaps(taken, *m.span()):
            continue
        entities.append(_ent("phone_number", m.start(), m.end(), "".join(m.groups())))
        taken.append(m.span())
    for regex in (LANDLINE, LOCAL_AFTER_KEYWORD):
        for m in regex.finditer(text):
            start, end = (m.start(), m.end()) if regex is LANDLINE else m.span(1)
            if _span_overlaps(taken, start, end):
                continue
            entities.append(_ent("phone_number", start, end, f"010-{m.group(1)}"))
            taken.append((start, end))
    for m in DATE_TIME.finditer(text):
        expr = m.group(0)
        if not expr or _span_overlaps(taken, *m.span()):
            continue
        if re.fullmatch(_CLOCK, expr) and not _bare_clock_is_time(text, m.end(), expr):
            continue  # "我有3点建议" is a count, not a time
        d, approximate = _resolve_date(expr, now)
        t = _resolve_time(expr)
        if d is None and t is None and not re.search(_VAGUE, expr):
            continue
        entities.append(
            _ent("date_time", m.start(), m.end(), expr,
                 {"date": d.isoformat() if d else None, "time": t, "approximate": bool(approximate)})
        )
        taken.append(m.span())
    entities.sort(key=lambda e: e["start"])
    return entities


_CLOCK_FOLLOWERS = ("以后", "之后", "以前", "之前", "前", "后", "到", "至", "开始", "还", "都", "才", "就", "了", "的时候", "多")


def _bare_clock_is_time(text: str, end: int, expr: str) -> bool:
    if re.search(r"(钟|半|分|刻|多|左右|[:：]\d)", expr):
        return True
    return text.startswith(_CLOCK_FOLLOWERS, end)


def _ent(entity: str, start: int, end: int, value: str, metadata: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    out = {"entity": entity, "start": start, "end": end, "value": value, "confidence_entity": 1.0}
    if metadata is not None:
        out["metadata"] = metadata
    return out


def mask_ids_in_text(text: str) -> str:
    """Replace every ID-card number in ``text`` by its masked form (used for free-text slots)."""
    return ID_CARD.sub(lambda m: mask_id(m.group(1).upper()), text) if text else text
