"""Quick-reply buttons offered by the custom actions (the domain's responses carry their own ``buttons:``).

Every payload is an intent payload (``/affirm``) so a click is understood exactly, whatever the NLU would make of
the title; the channels show the title (web widget: as the citizen's message; WeChat: as a numbered option whose
number sends the payload; REST: ``buttons`` in the JSON reply). The message text always names the options too, so
a citizen on a text-only channel can type the answer instead.
"""
from __future__ import annotations

from typing import Dict, List


def button(title: str, payload: str) -> Dict[str, str]:
    return {"title": title, "payload": payload}


HANDOFF = button("转人工", "/human_handoff")

# the read-back of the intake form (action_ask_confirmed)
READ_BACK = [button("确认提交", "/affirm"), button("需要修改", "/deny"), button("取消登记", "/cancel")]
# "这个回答对您有帮助吗？" after a knowledge-base answer
KB_FEEDBACK = [button("有帮助", "/affirm"), button("没帮助", "/deny")]
# "需要我帮您把这个问题登记下来…吗？"
OFFER_FILE = [button("帮我登记", "/affirm"), button("不用了", "/deny")]


def buttons(*groups: List[Dict[str, str]] | Dict[str, str]) -> List[Dict[str, str]]:
    """Concatenate button lists and single buttons (a fresh list each time: the dispatcher keeps a reference)."""
    out: List[Dict[str, str]] = []
    for group in groups:
        out.extend([dict(group)] if isinstance(group, dict) else [dict(b) for b in group])
    return out
