"""Form validation actions: slot extraction and validation for the intake, praise, status and callback forms.

All intake slots use ``custom`` mappings, so nothing reaches a slot without passing here: ID-card numbers are
masked in free text and never stored, the place comes from the gazetteer entities of the *current* message, and
corrections ("不对，是海淀区", "电话写错了", "改成匿名") are applied whatever slot the form is asking for.
"""
from __future__ import annotations

import logging
import re
from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.forms import REQUESTED_SLOT, FormValidationAction
from rasa_sdk.types import DomainDict

from actions.services import UNKNOWN

# an unmistakable "yes, submit it" at the read-back (not "对不起", "不对", "是不是")
_CONFIRM_AT_READBACK = re.compile(
    r"^\s*(确认|提交|没问题|没错|对(?![不吗])|是的|正确|可以|行|好的?)(?!.*(不对|不是|错了|有误|改|不要|别|但是|不过))")
from actions.slots import (
    HARD_INTERRUPTS,
    SOFT_INTERRUPTS,
    citizen_text,
    contact_name_in,
    has_id_number,
    is_substantive,
    last_entity_value,
    latest_entities,
    latest_intent,
    normalized_text,
    phone_tail_in,
    request_type_of,
)

logger = logging.getLogger(__name__)

ID_WARNING = "为保护您的隐私，请不要发送身份证号码——办理诉求不需要身份证号，我们也不会记录。"

_DISTRICTS = ("东城区", "西城区", "朝阳区", "丰台区", "石景山区", "海淀区", "门头沟区", "房山区", "通州区", "顺义区",
              "昌平区", "大兴区", "怀柔区", "平谷区", "密云区", "延庆区")
_ADDRESS_PREFIX = re.compile(r"^(就|是|在|位于|地址|地点|位置|具体|大概|应该)*(是|在|:|：)?\s*")
# Words that make a free-text answer look like a place: a chit-chat question asked instead of the address ("你是机器人吗",
# "今天天气怎么样") carries none of them and is answered by the dialogue rules, not taken as the address.
_PLACE_WORD = re.compile(
    r"\d|路|街|道|巷|胡同|号|楼|院|小区|村|镇|乡|区|里|园|门|桥|站|口|附近|对面|旁边|隔壁|广场|大厦|公园|医院|学校|市场|"
    r"商场|超市|社区|苑|庄|营|屯|府|城|湾|单元|层|室|店|厂|场|馆|寺|庙|河|湖|山|坊|铺|地铁|公交|车站|小学|中学|大学|家"
)
_DONT_KNOW = re.compile(r"不知道|不清楚|不晓得|说不(好|清|上来|准)|记不(清|得)|不记得|不确定|忘了|搞不清")
_AFFIRM_INTENTS = {"affirm"}
_DENY_INTENTS = {"deny"}

# correction keywords → slots to clear (when the message itself carries no new value)
_CLEAR_ON = [
    (re.compile(r"地址|地点|位置|门牌|楼号|小区|在哪"), ("address", "district", "street")),
    (re.compile(r"区(不对|错)|哪个区|区县"), ("district", "street")),
    (re.compile(r"街道(不对|错)|乡镇(不对|错)"), ("street",)),
    (re.compile(r"电话|手机|号码|联系方式"), ("contact_phone",)),
    (re.compile(r"描述|内容|问题|情况|我说的是|说的不是"), ("description",)),
    (re.compile(r"时间|日期"), ("occurred_at",)),
]


# "描述再补充一下，晚上十点以后还在炒菜" / "问题改成：…": a correction of the description that carries the new words
_DESCRIPTION_ADD = re.compile(
    r"(?:描述|内容|问题|情况)?\s*(?:再|还要|还想|我再|我想)?(?:补充|加上|添加|追加|补一句)(?:一下|一点|几句)?\s*[:：,，。]?\s*"
    r"(?P<rest>.+)")
_DESCRIPTION_SET = re.compile(r"(?:描述|内容|问题)\s*(?:应该是|改成|改为|换成)\s*[:：,，]?\s*(?P<rest>.+)")

# "5号楼", "3号院", "10号线": a number + 号 that is part of a place, not a day of the month
_PLACE_AFTER_DAY = re.compile(r"^\s*(楼|院|线|栋|幢|门|单元|室|地块|公寓)")


def _part_of_address(entity: Dict[str, Any], tracker: Tracker) -> bool:
    """A date_time entity inside an address entity's span, or followed by a building/line word ("5号楼")."""
    start, end = entity.get("start"), entity.get("end")
    if start is None or end is None:
        return False
    for place in latest_entities(tracker, "address"):
        if place.get("start") is not None and place["start"] <= start and end <= place.get("end", -1):
            return True
    text = normalized_text(tracker)
    return bool(_PLACE_AFTER_DAY.match(text[end:end + 4])) if end <= len(text) else False


def mostly_value(text: str) -> bool:
    """The message is essentially a number ("5678", "电话13812345678", "单号20261122-000123")."""
    return len(re.sub(r"[0-9\-\s+,.:()]", "", text or "")) <= 6


def _strip_district(address: str) -> str:
    for d in _DISTRICTS:
        address = address.replace(d, "")
    return address.strip(" ,，")


class ValidateIntakeForm(FormValidationAction):
    """Slots of ``intake_form``: description → address → (district) → contact_phone → confidential → confirmed."""

    def name(self) -> Text:
        return "validate_intake_form"

    # Every intake slot, in extraction order (anonymous before the contact slots it affects). The SDK extracts and
    # validates exactly the slots returned by required_slots(); which of them the form *asks* for is decided by
    # next_requested_slot() below.
    ALL_SLOTS = ["request_type", "anonymous", "description", "address", "district", "street", "occurred_at",
                 "contact_phone", "contact_name", "confidential", "confirmed"]

    async def required_slots(self, domain_slots: List[Text], dispatcher: CollectingDispatcher, tracker: Tracker,
                             domain: DomainDict) -> List[Text]:
        return list(self.ALL_SLOTS)

    @staticmethod
    def slots_to_ask(slots: Dict[Text, Any]) -> List[Text]:
        """description → address → district (only if the address resolved none) → contact_phone and confidential
        (unless anonymous) → confirmed (the read-back)."""
        ask = ["description", "address"]
        if slots.get("address") and slots.get("address") != UNKNOWN and not slots.get("district"):
            ask.append("district")
        if not slots.get("anonymous"):
            ask += ["contact_phone", "confidential"]
        ask.append("confirmed")
        return ask

    async def next_requested_slot(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                  domain: DomainDict) -> Optional[EventType]:
        missing = next((s for s in self.slots_to_ask(tracker.slots) if tracker.slots.get(s) is None), None)
        return SlotSet(REQUESTED_SLOT, missing)

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict):
        if has_id_number(tracker) and latest_intent(tracker) not in HARD_INTERRUPTS:
            dispatcher.utter_message(text=ID_WARNING)
        before = {k: tracker.slots.get(k) for k in self.ALL_SLOTS}
        events = await super().run(dispatcher, tracker, domain)
        requested = self._requested(tracker)
        if latest_intent(tracker) == "correction" and requested not in (None, "confirmed"):
            changed = [e for e in events if e.get("event") == "slot" and e.get("name") in before
                       and e.get("name") != requested and before[e["name"]] != e.get("value")]
            if changed:
                dispatcher.utter_message(text="好的，已为您更正。")
        return events

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _requested(tracker: Tracker) -> Optional[str]:
        return tracker.get_slot("requested_slot")

    @staticmethod
    def _blocked(tracker: Tracker) -> bool:
        return latest_intent(tracker) in HARD_INTERRUPTS

    def _correction_clears(self, tracker: Tracker) -> set:
        """Slots a correction without a new value asks to re-enter ("地址错了", "电话要改")."""
        if latest_intent(tracker) != "correction":
            return set()
        text = normalized_text(tracker)
        cleared: set = set()
        for pattern, slots in _CLEAR_ON:
            if pattern.search(text):
                cleared.update(slots)
        return cleared

    # ------------------------------------------------------------------ extraction
    async def extract_request_type(self, dispatcher, tracker, domain) -> Dict[Text, Any]:
        value = request_type_of(tracker)
        if value and not self._blocked(tracker) and value != tracker.get_slot("request_type"):
            return {"request_type": value}
        return {}

    async def extract_description(self, dispatcher, tracker, domain) -> Dict[Text, Any]:
        if self._blocked(tracker):
            return {}
        intent, requested = latest_intent(tracker), self._requested(tracker)
        text = citizen_text(tracker)
        current = tracker.get_slot("description")
        if requested != "description" and intent in ("correction", "inform"):
            added, replaced = _DESCRIPTION_ADD.search(text), _DESCRIPTION_SET.search(text)
            if added and is_substantive(added.group("rest"), 4):
                rest = added.group("rest").strip()
                return {"description": f"{current}；{rest}" if current else rest}
            if replaced and is_substantive(replaced.group("rest"), 4):
                return {"description": replaced.group("rest").strip()}
        if "description" in self._correction_clears(tracker) and requested != "description":
            return {"description": None}
        if requested == "description":
            if intent in SOFT_INTERRUPTS and not is_substantive(text, 6):
                return {}
            if intent in ("affirm", "deny", "dont_know", "anonymous", "confidential") and not is_substantive(text):
                return {"description": None}
            return {"description": text}
        if requested == "confirmed" and intent in ("inform", "file_request") and is_substantive(text, 6) and not any(
                latest_entities(tracker, e) for e in ("address", "district", "phone_number", "date_time")):
            # more detail given at the read-back: add it to the description
            return {"description": f"{current}；{text}" if current else text}
        if requested is None and intent == "file_request" and is_substantive(text):
            # activation (or re-activation after an interruption): the request itself is the description
            if not current:
                return {"description": text}
            if text not in current:
                return {"description": f"{current}；{text}"}
        return {}

    async def extract_address(self, dispatcher, tracker, domain) -> Dict[Text, Any]:
        if self._blocked(tracker):
            return {}
        requested = self._requested(tracker)
        current = tracker.get_slot("address")
        found = last_entity_value(tracker, "address")
        if found:
            only_district = found in _DISTRICTS or found.rstrip("区") + "区" in _DISTRICTS and len(found) <= 4
            if only_district and current and current != UNKNOWN and requested != "address":
                # "不对，是海淀区": keep the detail the citizen gave, change the district
                district = last_entity_value(tracker, "district") or found
                return {"address": f"{district}{_strip_district(current)}"}
            return {"address": found}
        if "address" in self._correction_clears(tracker) and requested != "address":
            return {"address": None}
        if requested != "address":
            return {}
        text = citizen_text(tracker)
        if latest_intent(tracker) == "dont_know" or _DONT_KNOW.search(text):
            return {"address": UNKNOWN}
        intent = latest_intent(tracker)
        if intent in SOFT_INTERRUPTS and not _PLACE_WORD.search(text):
            return {}  # a question or pleasantry instead of the place: the rules answer it, the form asks again
        if intent in SOFT_INTERRUPTS | {"affirm", "deny"} and not is_substantive(text, 3):
            return {}
        cleaned = _ADDRESS_PREFIX.sub("", text).strip()
        return {"address": cleaned or None}

    async def extract_district(self, dispatcher, tracker, domain) -> Dict[Text, Any]:
        if self._blocked(tracker):
            return {}
        requested = self._requested(tracker)
        found = last_entity_value(tracker, "district")
        if found:
            return {"district": found}
        clears = self._correction_clears(tracker)
        if "district" in clears and requested != "district":
            return {"district": None}
        if requested == "district":
            if latest_intent(tracker) == "dont_know" or _DONT_KNOW.search(citizen_text(tracker)):
                return {"district": UNKNOWN}
            if latest_intent(tracker) in SOFT_INTERRUPTS and not _PLACE_WORD.search(citizen_text(tracker)):
                return {}  # a question or pleasantry instead of the district: the rules answer it, then ask again
            dispatcher.utter_message(text="抱歉，没有识别出是北京哪个区。")
            return {"district": None}
        # a new address without a district: forget the old district so the form asks again
        if last_entity_value(tracker, "address") is None and requested == "address" and latest_intent(tracker) != "dont_know":
            return {"district": None} if tracker.get_slot("district") else {}
        return {}

    async def extract_street(self, dispatcher, tracker, domain) -> Dict[Text, Any]:
        if self._blocked(tracker):
            return {}
        found = latest_entities(tracker, "street")
        if found:
            return {"street": found[-1].get("value")}
        current = tracker.get_slot("street")
        new_district = last_entity_value(tracker, "district")
        if current and (new_district or "street" in self._correction_clears(tracker)):
            return {"street": None}  # a new district without a street: the old street no longer applies
        if current and self._requested(tracker) == "address" and last_entity_value(tracker, "address") is None:
            return {"street": None}
        return {}

    async def extract_occurred_at(self, dispatcher, tracker, domain) -> Dict[Text, Any]:
        if self._blocked(tracker):
            return {}
        if latest_intent(tracker) in SOFT_INTERRUPTS - {"thanks"}:
            return {}  # "今天天气怎么样" is small talk, not when the problem happened
        found = [e for e in latest_entities(tracker, "date_time") if not _part_of_address(e, tracker)]
        if not found:
            return {"occurred_at": None} if "occurred_at" in self._correction_clears(tracker) else {}
        parts = []
        for e in found:
            meta = e.get("metadata") or {}
            resolved = " ".join(x for x in (meta.get("date"), meta.get("time")) if x)
            parts.append(f"{e.get('value')}（{resolved}）" if resolved and not meta.get("approximate") else e.get("value"))
        return {"occurred_at": "，".join(parts)}

    async def extract_contact_phone(self, dispatcher, tracker, domain) -> Dict[Text, Any]:
        phone = last_entity_value(tracker, "phone_number")
        if phone and (not self._blocked(tracker) or mostly_value(normalized_text(tracker))):
            return {"contact_phone": phone}  # a bare number is an answer, whatever intent the NLU guessed
        if self._blocked(tracker):
            return {}
        if "contact_phone" in self._correction_clears(tracker) and self._requested(tracker) != "contact_phone":
            return {"contact_phone": None}
        if self._requested(tracker) != "contact_phone":
            return {}
        intent = latest_intent(tracker)
        if intent in ("anonymous", "deny", "confidential", "correction") or intent in SOFT_INTERRUPTS:
            return {}  # handled by extract_anonymous / extract_confidential, or by the rules
        if has_id_number(tracker):
            return {"contact_phone": None}
        dispatcher.utter_message(text="没有识别出有效的电话号码。请提供11位手机号，或带区号的座机号（如010-62345678）。")
        return {"contact_phone": None}

    async def extract_contact_name(self, dispatcher, tracker, domain) -> Dict[Text, Any]:
        if self._blocked(tracker):
            return {}
        name = contact_name_in(normalized_text(tracker))
        return {"contact_name": name} if name else {}

    async def extract_anonymous(self, dispatcher, tracker, domain) -> Dict[Text, Any]:
        if self._blocked(tracker):
            return {}
        intent, requested = latest_intent(tracker), self._requested(tracker)
        text = normalized_text(tracker)
        if intent == "anonymous" or (intent == "correction" and "匿名" in text and not re.search(r"不(要|用)?匿名", text)):
            return {"anonymous": True, "contact_phone": None, "contact_name": None, "confidential": None}
        if requested == "contact_phone" and intent == "deny":
            dispatcher.utter_message(text="好的，将按匿名方式为您登记。")
            return {"anonymous": True, "contact_phone": None, "contact_name": None}
        if tracker.get_slot("anonymous") and (last_entity_value(tracker, "phone_number")
                                              or re.search(r"不(要|用)?匿名|实名", text)):
            return {"anonymous": False}
        return {}

    async def extract_confidential(self, dispatcher, tracker, domain) -> Dict[Text, Any]:
        if self._blocked(tracker):
            return {}
        intent, requested = latest_intent(tracker), self._requested(tracker)
        text = normalized_text(tracker)
        if re.search(r"不(需要|用|要|必)保密|不保密", text):
            return {"confidential": False}
        if intent == "confidential" or (intent == "correction" and "保密" in text):
            return {"confidential": True}
        if requested == "confidential":
            if intent in _AFFIRM_INTENTS:
                return {"confidential": True}
            if intent in _DENY_INTENTS or intent == "dont_know":
                return {"confidential": False}
        return {}

    async def extract_confirmed(self, dispatcher, tracker, domain) -> Dict[Text, Any]:
        if self._blocked(tracker) or self._requested(tracker) != "confirmed":
            return {}
        intent = latest_intent(tracker)
        if intent in _AFFIRM_INTENTS:
            return {"confirmed": True}
        if _CONFIRM_AT_READBACK.match(citizen_text(tracker) or "") and not any(
                latest_entities(tracker, e) for e in ("address", "district", "phone_number", "date_time")):
            # "对，没问题，提交吧" at the read-back is a confirmation whatever intent the NLU guessed
            return {"confirmed": True}
        if intent in SOFT_INTERRUPTS:
            return {}  # answered by the rules, then the read-back is repeated
        # anything else at the read-back (a correction, "不对", more detail) keeps the form on the read-back
        return {"confirmed": None}

    # ------------------------------------------------------------------ validation
    async def validate_contact_phone(self, value: Any, dispatcher, tracker, domain) -> Dict[Text, Any]:
        if value is None:
            return {"contact_phone": None}
        digits = re.sub(r"\D", "", str(value))
        if re.fullmatch(r"1[3-9]\d{9}", digits) or re.fullmatch(r"010[2-9]\d{7}", digits):
            return {"contact_phone": value, "anonymous": False}
        dispatcher.utter_message(text="这个号码好像不完整，请再确认一下。")
        return {"contact_phone": None}

    async def validate_description(self, value: Any, dispatcher, tracker, domain) -> Dict[Text, Any]:
        if value and not is_substantive(str(value), 2):
            return {"description": None}
        return {"description": value}


# Intents answered by the dialogue rules while a status query or praise is being taken (rules.yml): their message
# fills no slot there and gets no "not recognised" message.
_NOT_A_PRAISE = frozenset({"greet", "chitchat", "bot_challenge", "status_query", "consult"})
_NOT_A_STATUS_ANSWER = frozenset({"greet", "thanks", "chitchat", "bot_challenge", "consult", "file_request"})


class ValidatePraiseForm(FormValidationAction):
    def name(self) -> Text:
        return "validate_praise_form"

    async def extract_praise_text(self, dispatcher, tracker, domain) -> Dict[Text, Any]:
        intent, requested = latest_intent(tracker), tracker.get_slot("requested_slot")
        if intent in HARD_INTERRUPTS:
            return {}
        text = citizen_text(tracker)
        if requested is None and intent == "praise":
            return {"praise_text": text} if is_substantive(text.replace("表扬", ""), 4) else {}
        if intent in _NOT_A_PRAISE:
            return {}  # "你是机器人吗" is a question, not whom to praise: the rules answer it and ask again
        if requested == "praise_text" and (intent not in SOFT_INTERRUPTS or is_substantive(text, 4)):
            return {"praise_text": text}
        return {}


class ValidateStatusForm(FormValidationAction):
    def name(self) -> Text:
        return "validate_status_form"

    async def extract_status_order_number(self, dispatcher, tracker, domain) -> Dict[Text, Any]:
        number = last_entity_value(tracker, "work_order_number")
        if number and (latest_intent(tracker) not in HARD_INTERRUPTS or mostly_value(normalized_text(tracker))):
            return {"status_order_number": number}
        if latest_intent(tracker) in HARD_INTERRUPTS | _NOT_A_STATUS_ANSWER:
            return {}
        if tracker.get_slot("requested_slot") == "status_order_number" and latest_intent(tracker) != "dont_know":
            dispatcher.utter_message(text="没有识别出工单编号。工单编号由8位日期和6位序号组成，例如 20261122-000123。")
            return {"status_order_number": None}
        return {}

    async def extract_status_phone_tail(self, dispatcher, tracker, domain) -> Dict[Text, Any]:
        if tracker.get_slot("requested_slot") != "status_phone_tail":
            return {}
        text = normalized_text(tracker)
        phone = last_entity_value(tracker, "phone_number")
        tail = phone[-4:] if phone else phone_tail_in(text)
        if tail and (latest_intent(tracker) not in HARD_INTERRUPTS or mostly_value(text)):
            return {"status_phone_tail": tail}
        if latest_intent(tracker) in HARD_INTERRUPTS | _NOT_A_STATUS_ANSWER:
            return {}
        if latest_intent(tracker) == "dont_know":
            return {}
        dispatcher.utter_message(text="请告诉我电话号码的最后四位数字，例如“5678”。")
        return {"status_phone_tail": None}


_SATISFACTION_INTENTS = {"satisfied": "满意", "basically_satisfied": "基本满意", "dissatisfied": "不满意"}


def satisfaction_in(text: str) -> Optional[str]:
    if re.search(r"基本满意|还行|还可以|一般|凑合|马马虎虎|过得去", text):
        return "基本满意"
    if re.search(r"不(太|怎么|是很)?满意|差评|很差|太差|失望", text):
        return "不满意"
    if "满意" in text:
        return "满意"
    return None


class ValidateCallbackForm(FormValidationAction):
    """Callback (回访, art. 23): was the problem resolved, and how satisfied is the citizen."""

    def name(self) -> Text:
        return "validate_callback_form"

    async def extract_callback_resolved(self, dispatcher, tracker, domain) -> Dict[Text, Any]:
        intent, requested = latest_intent(tracker), tracker.get_slot("requested_slot")
        if requested != "callback_resolved" or intent in HARD_INTERRUPTS:
            return {}
        text = normalized_text(tracker)
        if intent == "not_resolved" or re.search(r"没(有)?解决|未解决|还没|没修|没人(来|管)|依旧|照旧", text):
            return {"callback_resolved": False}
        if intent in ("resolved", "affirm") or re.search(r"解决了|已解决|修好了|处理好了|弄好了", text):
            return {"callback_resolved": True}
        if intent == "deny":
            return {"callback_resolved": False}
        return {}

    async def extract_callback_satisfaction(self, dispatcher, tracker, domain) -> Dict[Text, Any]:
        intent, requested = latest_intent(tracker), tracker.get_slot("requested_slot")
        if intent in HARD_INTERRUPTS or requested not in ("callback_resolved", "callback_satisfaction"):
            return {}
        value = _SATISFACTION_INTENTS.get(intent) or satisfaction_in(normalized_text(tracker))
        if value:
            return {"callback_satisfaction": value}
        if requested == "callback_satisfaction":
            dispatcher.utter_message(text="请从“满意”“基本满意”“不满意”中选择一项。")
            return {"callback_satisfaction": None}
        return {}
