"""Emergency safety net: a message describing an emergency happening now is classified ``emergency`` whatever the
statistical classifier said.

Regulation art. 11(1) sends emergencies to 110/119/120/122; missing one is far worse than telling a citizen once too
often to call an emergency line, so the intake bot treats emergency recall as a hard requirement. The classifier learns the
intent from examples; this component adds a lexicon of unambiguous emergency expressions in four groups (fire and
explosion/gas, crime in progress, medical emergency, traffic accident; plus people in danger: drowning, trapped,
suicide attempts) and overrides the prediction when one matches and no marker says the event is hypothetical, past
or the subject of a complaint/consultation (万一, 隐患, 上次, 去年, 投诉…, 请问…).

The override is visible: the parse result carries ``emergency_guard = {"matched": <expression>, "group": <group>,
"overrode": <previous intent or null>}``.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Text, Tuple

GROUPS: Dict[str, str] = {
    "fire": r"着火|着大火|起火|失火|火灾|火光|大火|火苗|火势|烧起来|烧着了|自燃|爆炸|浓烟滚滚|"
            r"(楼|屋|家|房|车|楼道|走廊|窗户|门缝|电梯)[^,.!?;]{0,6}(浓烟|冒烟|黑烟|烟(很|特别|好)大)",
    "gas": r"(煤气|燃气|天然气|液化气).{0,6}(泄漏|泄露|漏了|漏气|味(道)?(很|特别|非常|太)?(大|重|浓|冲))|漏气了|高压线.{0,4}(断|掉)",
    "crime": r"持刀|拿(着)?刀|砍人|砍伤|捅人|捅了|抢劫|抢了(我|包|钱|手机)|抢包|打劫|绑架|绑走|撬(门|锁|车)|撬.{0,4}(门|锁)|"
             r"进(了)?贼|入室|杀人|要杀|开枪|枪声|打人|打架|群殴|家暴|强奸|猥亵|劫持|跟踪我|砸人|行凶|"
             r"在打(人|架|孩子|小孩|老婆|老人|我)|(孩子|小孩|女儿|儿子|女孩).{0,4}(抱走|拐走|拽)",
    "medical": r"晕倒|昏倒|晕过去|昏迷|不省人事|没(有)?(了)?呼吸|没(有)?意识|叫不醒|抽搐|口吐白沫|心脏病(犯|发作)|"
               r"胸口(剧|很|特别|疼得)?疼|大出血|血流不止|流了(好多|很多|一地)血|一直(在)?流血|头破血流|烫伤|烧伤|骨折|中毒|"
               r"误吞|误服|吃错药|吃了.{0,6}(安眠药|农药|老鼠药)|割腕|触电|溺水|休克|羊水破|要生了|呼吸困难|喘不上气|喘不过气来|"
               r"中风|脑梗|半边身子|说不出话|摔倒.{0,8}(起不来|流血|不动)|救护车|急救|突然倒地|"
               r"(倒|晕|昏|躺|摔)[^,.!?;]{0,8}[,，]?[^,.!?;]{0,4}(没(有)?反应|不动了|一动不动|没动静|没了动静)",
    "traffic": r"车祸|撞(了)?人|相撞|撞车|撞上了|撞飞|追尾|侧翻|翻车|肇事逃逸|撞.{0,4}跑了|卡在车里|(车|车辆|公交|货车|轿车|出租车|电动车|摩托车).{0,8}撞(了|上|到)|"
               r"(人|我|他|她|孩子|小孩|老人|行人)被(车)?撞(了|倒|伤|飞)",
    "danger": r"救命|跳楼|跳河|跳桥|轻生|自杀|落水|掉(进|到)(水|河|湖|井|冰)|在水里(挣扎|扑腾|喊)|被困|困在|被埋|塌了|坍塌|快报警|帮我报警|报警啊|"
              r"(有|好几个|几个|多)(人|乘客|行人|孩子|小孩|老人)[^,.!?;]{0,3}(受伤|伤了|受了伤)|伤(得)?很重|伤者",
}
_GROUP_PATTERNS: List[Tuple[str, "re.Pattern[str]"]] = [(g, re.compile(p)) for g, p in GROUPS.items()]

# The event is hypothetical, past, reported news, or the message is a complaint/consultation about it.
NOT_NOW = re.compile(
    r"万一|隐患|容易|担心|害怕会|会不会|以防|预防|防止|防范|上次|上回|以前|之前|去年|前年|上个月|上礼拜|上星期|上周|前几天|曾经|"
    r"演练|宣传|培训|新闻|电视|小说|电影|游戏|请问|怎么办理|咨询|规定|赔偿|赔钱|报销|理赔|保险|起诉|"
    r"投诉|举报.{0,8}(隐患|违规)|出警(太)?慢|不作为|态度|处理结果|工单|回访|表扬|感谢|点赞|锦旗"
)


def match(text: str) -> Optional[Dict[str, str]]:
    """``{"matched", "group"}`` when ``text`` (normalised) describes an emergency happening now, else None."""
    if not text or NOT_NOW.search(text):
        return None
    for group, pattern in _GROUP_PATTERNS:
        m = pattern.search(text)
        if m:
            return {"matched": m.group(0), "group": group}
    return None


# --------------------------------------------------------------------------------------------- Rasa component

try:
    from rasa.engine.graph import ExecutionContext, GraphComponent
    from rasa.engine.recipes.default_recipe import DefaultV1Recipe
    from rasa.engine.storage.resource import Resource
    from rasa.engine.storage.storage import ModelStorage
    from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, INTENT_RANKING_KEY, PREDICTED_CONFIDENCE_KEY, TEXT
    from rasa.shared.nlu.training_data.message import Message
except ImportError:  # pragma: no cover
    DefaultV1Recipe = None


if DefaultV1Recipe is not None:

    @DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
    class EmergencyGuard(GraphComponent):
        """Sets the intent to ``emergency`` when :func:`match` fires (place it after the intent classifier)."""

        @staticmethod
        def get_default_config() -> Dict[Text, Any]:
            return {"intent": "emergency", "confidence": 0.99}

        def __init__(self, config: Dict[Text, Any]) -> None:
            self._config = config

        @classmethod
        def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
                   execution_context: ExecutionContext) -> "EmergencyGuard":
            return cls(config)

        def process(self, messages: List[Message]) -> List[Message]:
            target = self._config["intent"]
            for message in messages:
                text = message.get(TEXT)
                if not text or text.startswith("/"):
                    continue
                found = match(text)
                if not found:
                    continue
                current = message.get(INTENT) or {}
                previous = current.get(INTENT_NAME_KEY)
                confidence = max(float(self._config["confidence"]), float(current.get(PREDICTED_CONFIDENCE_KEY) or 0))
                if previous != target or (current.get(PREDICTED_CONFIDENCE_KEY) or 0) < confidence:
                    ranking = [r for r in (message.get(INTENT_RANKING_KEY) or []) if r.get(INTENT_NAME_KEY) != target]
                    entry = {INTENT_NAME_KEY: target, PREDICTED_CONFIDENCE_KEY: confidence}
                    message.set(INTENT, entry, add_to_output=True)
                    message.set(INTENT_RANKING_KEY, [entry] + ranking, add_to_output=True)
                message.set("emergency_guard", {**found, "overrode": previous if previous != target else None},
                            add_to_output=True)
            return messages
