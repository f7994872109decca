"""Routing decision (分类处置与派单研判, arts. 11, 12, 14, 16, 17) and suggested handling units.

:func:`route` is pure: it reads the in-memory :class:`~dispatch.catalog.catalog.Catalog`, the intake, the classifier's
:class:`~dispatch.proposal.ModelProposal` and, for repeats, the citizen's earlier orders handed in by the caller.
Every decision carries a reason in Chinese that an agent can read and check.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime

from dispatch.catalog.catalog import Catalog, RuleInfo
from dispatch.catalog.places import Location
from dispatch.proposal import Intake, ModelProposal, Similarity
from dispatch.states import FINAL_STATUSES, STATUS_LABELS

# dispositions
EMERGENCY = "emergency_transfer"  # art. 11(1)
LEGAL = "legal_channel"  # art. 11(2)
REPEAT = "repeat"  # art. 11(3)
CONFIDENTIAL = "confidential"  # art. 11(4)
OUT_OF_SCOPE = "out_of_scope"  # art. 11(5)
HARASSMENT = "harassment"  # art. 11(6)
ANSWERED = "answered"  # art. 11 para. 1
DIRECT = "direct_dispatch"  # art. 12(1)
DISTRICT = "district_coordination"  # art. 12(2)
NEED_INFO = "need_more_info"

DISPOSITION_LABELS = {
    EMERGENCY: "转紧急专线",
    LEGAL: "告知法定途径",
    REPEAT: "重复诉求",
    CONFIDENTIAL: "涉密或隐私，做好解释",
    OUT_OF_SCOPE: "职责范围外，告知其他渠道",
    HARASSMENT: "劝导教育",
    ANSWERED: "即时答复",
    DIRECT: "直接派单",
    DISTRICT: "派区政府协调",
    NEED_INFO: "需补充信息",
}
INFORM_DISPOSITIONS = (LEGAL, CONFIDENTIAL, OUT_OF_SCOPE, HARASSMENT, ANSWERED)


def lexical_similarity(a: str, b: str) -> float:
    """Dice coefficient of character bigrams (0–1): the built-in fallback when no embedding similarity is given."""

    def grams(s: str) -> set[str]:
        s = "".join(ch for ch in s if not ch.isspace() and ch not in "，。！？、；：,.!?;:“”\"'（）()")
        return {s[i : i + 2] for i in range(len(s) - 1)} or ({s} if s else set())

    ga, gb = grams(a or ""), grams(b or "")
    if not ga or not gb:
        return 0.0
    return 2 * len(ga & gb) / (len(ga) + len(gb))


@dataclass
class Suggestion:
    """A suggested concrete unit (top-3 are shown to the agent)."""

    unit_code: str
    unit_name: str
    unit_type: str
    unit_type_name: str
    confidence: float
    reason: str
    supervise_unit_code: str | None = None  # art. 12(1): a street/township dispatch also goes to the district government
    supervise_unit_name: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PriorOrder:
    """One of the same citizen's earlier orders, for repeat detection (art. 11(3))."""

    number: str
    content: str
    district: str
    street: str
    status: str
    created_at: datetime
    lead_unit_name: str | None = None
    reply_text: str | None = None


@dataclass
class RoutingDecision:
    disposition: str
    reason: str
    citizen_message: str
    target: str | None = None  # emergency line / legal channel / repeated order number
    urgency: str = "normal"
    urgency_reason: str = ""
    needs_consultation: bool = False
    consultation_reason: str = ""
    location: Location = field(default_factory=Location)
    suggestions: list[Suggestion] = field(default_factory=list)
    repeat_of: str | None = None
    repeat_open: bool = False
    request_type: str | None = None
    category_l1: str | None = None
    category_l2: str | None = None
    rule_hits: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return DISPOSITION_LABELS[self.disposition]

    @property
    def dispatchable(self) -> bool:
        return self.disposition in (DIRECT, DISTRICT)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["label"] = self.label
        data["location"] = asdict(self.location)
        return data


def _to_citizen(reason: str) -> str:
    """A rule's reason as a sentence to the citizen."""
    if reason.startswith("该事项"):
        return "您反映的事项" + reason[3:] + "。"
    return "您反映的事项" + reason + "。"


def _first_hit(rules: Sequence[RuleInfo], text: str) -> tuple[RuleInfo, str] | None:
    for rule in rules:
        hits = rule.match_text(text)
        if hits:
            return rule, hits[0]
    return None


def _top_label(items) -> str | None:
    top = ModelProposal.top(items or [])
    return top.label if top else None


def _unit_type_scores(catalog: Catalog, text: str, request: dict, proposal: ModelProposal | None
                      ) -> tuple[dict[str, float], dict[str, list[str]], list[str]]:
    """Combined unit-type distribution from the model and the rules, with the reasons behind each type."""
    reasons: dict[str, list[str]] = {}
    hits_codes: list[str] = []
    rule_scores: dict[str, float] = {}
    for rule in catalog.rules.get("unit", []):
        if rule.category_l1 and rule.category_l1 != request["category_l1"]:
            continue
        if rule.category_l2 and rule.category_l2 != request["category_l2"]:
            continue
        if rule.keywords or rule.patterns:
            hits = rule.match_text(text)
            if not hits:
                continue
            score = rule.weight * (1 + 0.25 * (len(set(hits)) - 1))
            reasons.setdefault(rule.target, []).append("关键词“" + "、".join(dict.fromkeys(hits)) + "”")
        elif rule.category_l1 or rule.category_l2:
            score = rule.weight
            cat = "/".join(c for c in (rule.category_l1, rule.category_l2) if c)
            reasons.setdefault(rule.target, []).append(f"诉求分类“{cat}”")
        else:
            continue
        hits_codes.append(rule.code)
        rule_scores[rule.target] = rule_scores.get(rule.target, 0.0) + score
    total = sum(rule_scores.values())
    rule_dist = {k: v / total for k, v in rule_scores.items()} if total else {}

    model_dist: dict[str, float] = {}
    if proposal and proposal.unit_type:
        msum = sum(max(s.prob, 0.0) for s in proposal.unit_type) or 1.0
        for s in proposal.unit_type:
            if s.label in catalog.unit_type_names:
                model_dist[s.label] = model_dist.get(s.label, 0.0) + max(s.prob, 0.0) / max(msum, 1.0)
                reasons.setdefault(s.label, []).insert(0, f"模型预测{s.prob:.2f}" + (f"（{s.reason}）" if s.reason else ""))
    mw = float(catalog.settings.get("model_weight", 0.6))
    if model_dist and rule_dist:
        combined = {t: mw * model_dist.get(t, 0.0) + (1 - mw) * rule_dist.get(t, 0.0)
                    for t in set(model_dist) | set(rule_dist)}
    else:
        combined = model_dist or rule_dist
    return combined, reasons, hits_codes


def suggest_units(catalog: Catalog, text: str, location: Location, request: dict,
                  proposal: ModelProposal | None, limit: int = 3) -> tuple[list[Suggestion], list[str], dict[str, float]]:
    """Top concrete units with confidence (0–1) and reason, best first."""
    combined, reasons, hits = _unit_type_scores(catalog, text, request, proposal)
    by_unit: dict[str, Suggestion] = {}
    for unit_type, score in sorted(combined.items(), key=lambda kv: -kv[1])[:8]:
        resolved = catalog.resolve(unit_type, location, text)
        if resolved is None or resolved.unit is None:
            continue
        unit = resolved.unit
        local = unit.level in ("street", "community", "district")
        confidence = round(score * resolved.factor * (location.confidence if local and location.known else 1.0), 3)
        why = [f"承办单位类型“{catalog.type_name(unit_type)}”：" + "；".join(reasons.get(unit_type, []) or ["综合研判"])]
        if local:
            why.append("属地：" + location.describe())
        if resolved.note:
            why.append(resolved.note)
        suggestion = Suggestion(unit.code, unit.name, unit.unit_type, catalog.type_name(unit.unit_type), confidence,
                                "；".join(why))
        if unit.unit_type in ("street_office", "community_committee"):
            gov = catalog.district_government(unit.district)
            if gov:
                suggestion.supervise_unit_code, suggestion.supervise_unit_name = gov.code, gov.name
                suggestion.reason += f"；依条例第十二条第一款第一项，同时派{gov.name}督促协调"
        existing = by_unit.get(unit.code)
        if existing is None:
            by_unit[unit.code] = suggestion
        else:
            existing.confidence = round(min(1.0, existing.confidence + confidence), 3)
            existing.reason += "；另：" + suggestion.reason
    ranked = sorted(by_unit.values(), key=lambda s: -s.confidence)
    return ranked[:limit], hits, combined


def without_places(catalog: Catalog, text: str) -> str:
    """The matter of a request: its text without the place names the gazetteer knows (districts, streets,
    communities, landmarks). Repeat detection compares places through the resolved location, and the words of a
    shared place would otherwise make two different matters at the same place look alike."""
    text = text or ""
    kept, end = [], 0
    for match in catalog.places.find(text):
        kept.append(text[end : match.start])
        end = match.start + len(match.surface)
    kept.append(text[end:])
    matter = "".join(kept).strip(" ，。,.、；;")
    return matter if len(matter) >= 2 else text


def _repeat_of(catalog: Catalog, intake: Intake, location: Location, priors: Sequence[PriorOrder],
               similarity: Similarity, threshold: float) -> tuple[PriorOrder, float] | None:
    best: tuple[PriorOrder, float] | None = None
    matter = without_places(catalog, intake.content)
    for prior in priors:
        if location.district and prior.district and location.district != prior.district:
            continue
        if location.street and prior.street and location.street != prior.street:
            continue
        score = float(similarity(matter, without_places(catalog, prior.content)))
        if score >= threshold and (best is None or score > best[1]):
            best = (prior, score)
    return best


def route(
    catalog: Catalog,
    intake: Intake,
    proposal: ModelProposal | None = None,
    priors: Sequence[PriorOrder] = (),
    similarity: Similarity | None = None,
    similarity_threshold: float | None = None,
) -> RoutingDecision:
    """Decide how to handle a request (art. 11) and, if it is to be dispatched, where (art. 12)."""
    text = " ".join(t for t in (intake.content, intake.address or "") if t)
    request = {
        "request_type": intake.request_type or _top_label(proposal.request_type if proposal else None),
        "category_l1": intake.category_l1 or _top_label(proposal.category_l1 if proposal else None),
        "category_l2": intake.category_l2 or _top_label(proposal.category_l2 if proposal else None),
    }
    location = catalog.places.resolve(intake.address, intake.content, intake.district, intake.street)

    def decision(disposition: str, reason: str, message: str, **kw) -> RoutingDecision:
        d = RoutingDecision(disposition, reason, message, location=location, **request, **kw)
        return d

    urgency, urgency_reason = "normal", ""
    urgent_hit = _first_hit(catalog.rules.get("urgent", []), text)
    if intake.urgency == "urgent":
        urgency, urgency_reason = "urgent", "登记时标记为紧急（一级响应）"
    elif urgent_hit:
        urgency, urgency_reason = "urgent", f"{urgent_hit[0].reason}（命中“{urgent_hit[1]}”）"

    # art. 11(1): emergencies go to 110/119/120/122 at once
    hit = _first_hit(catalog.rules.get("emergency", []), text)
    if hit:
        rule, surface = hit
        return decision(EMERGENCY, f"依条例第十一条第二款第一项：{rule.reason}（命中“{surface}”）",
                        f"您反映的情况属于紧急事项，请立即拨打{rule.target}，我们也将同步转接{rule.target}处理。",
                        target=rule.target, urgency="urgent", rule_hits=[rule.code])
    # art. 11(2): legal channels
    hit = _first_hit(catalog.rules.get("legal_channel", []), text)
    if hit:
        rule, surface = hit
        return decision(LEGAL, f"依条例第十一条第二款第二项：{rule.reason}（命中“{surface}”）",
                        _to_citizen(rule.reason), target=rule.target, rule_hits=[rule.code])
    # art. 11(4): secrets and other people's privacy
    hit = _first_hit(catalog.rules.get("confidential", []), text)
    if hit:
        rule, surface = hit
        return decision(CONFIDENTIAL, f"依条例第十一条第二款第四项：{rule.reason}（命中“{surface}”）",
                        "您咨询的内容涉及国家秘密、商业秘密或他人个人隐私，依法不能提供，敬请谅解。",
                        target=rule.target, rule_hits=[rule.code])
    # art. 11(3): the same citizen's same request, already being handled or handled
    if priors and not intake.new_circumstances:
        threshold = similarity_threshold if similarity_threshold is not None else float(
            catalog.settings.get("repeat_threshold", 0.5))
        found = _repeat_of(catalog, intake, location, priors, similarity or lexical_similarity, threshold)
        if found:
            prior, score = found
            is_open = prior.status not in FINAL_STATUSES
            status = STATUS_LABELS.get(prior.status, prior.status)
            if is_open:
                message = (f"您反映的问题已在办理中（工单号{prior.number}，当前状态：{status}"
                           + (f"，承办单位：{prior.lead_unit_name}" if prior.lead_unit_name else "")
                           + "），本次诉求已并入原工单，我们会督促尽快办理。")
            else:
                message = (f"您反映的问题已办理完毕（工单号{prior.number}）"
                           + (f"，办理结果：{prior.reply_text}" if prior.reply_text else "")
                           + "。如有新情况、新理由，请补充说明后再次提出。")
            return decision(REPEAT, f"依条例第十一条第二款第三项：同一诉求人（同一电话）在{prior.created_at:%Y-%m-%d}"
                                    f"提出的工单{prior.number}（{status}）内容相似度{score:.2f}，属地一致，且未提出新情况、新理由",
                            message, target=prior.number, repeat_of=prior.number, repeat_open=is_open,
                            urgency=urgency, urgency_reason=urgency_reason)
    # art. 11(5): outside every unit's remit
    hit = _first_hit(catalog.rules.get("out_of_scope", []), text)
    if hit:
        rule, surface = hit
        return decision(OUT_OF_SCOPE, f"依条例第十一条第二款第五项：{rule.reason}（命中“{surface}”）",
                        _to_citizen(rule.reason), target=rule.target, rule_hits=[rule.code])
    # art. 11 para. 1: a consultation answered on the spot
    if request["request_type"] == "咨询" and intake.answered_immediately:
        return decision(ANSWERED, "依条例第十一条第一款：咨询类诉求已即时答复", "您的咨询已答复，感谢来电。")

    suggestions, hits, combined = suggest_units(catalog, text, location, request, proposal)
    min_conf = float(catalog.settings.get("dispatch_min_confidence", 0.3))
    top = suggestions[0] if suggestions else None
    clear = top is not None and top.confidence >= min_conf and not (
        top.unit_type == "district_government" and "派区政府协调" in top.reason)

    # art. 11(6): abuse or harassment without a request a unit could handle
    harass = _first_hit(catalog.rules.get("harassment", []), text)
    if harass and not clear:
        rule, surface = harass
        return decision(HARASSMENT, f"依条例第十一条第二款第六项：{rule.reason}（命中“{surface}”）",
                        "请您文明表达诉求。依照《北京市接诉即办工作条例》第九条，诉求人应当尊重工作人员、遵守工作秩序，"
                        "不得恶意反复拨打或长时间占用热线；情节恶劣构成违反治安管理行为的，将由公安机关依法处理。",
                        target=rule.target, rule_hits=[rule.code])

    # art. 12 para. 2: hard or multi-unit requests are discussed (会商) before dispatch
    consult_reasons = []
    consult_hit = _first_hit(catalog.rules.get("consultation", []), text)
    if consult_hit:
        consult_reasons.append(f"{consult_hit[0].reason}（命中“{consult_hit[1]}”）")
    ranked_types = sorted(combined.items(), key=lambda kv: -kv[1])
    ratio = float(catalog.settings.get("consultation_second_ratio", 0.75))
    if len(ranked_types) > 1 and ranked_types[1][1] >= 0.25 and ranked_types[1][1] >= ratio * ranked_types[0][1]:
        consult_reasons.append(
            f"涉及多个承办单位类型（{catalog.type_name(ranked_types[0][0])}、{catalog.type_name(ranked_types[1][0])}），职责交叉")
    extra = {"urgency": urgency, "urgency_reason": urgency_reason, "needs_consultation": bool(consult_reasons),
             "consultation_reason": "；".join(consult_reasons), "rule_hits": hits + ([harass[0].code] if harass else [])}
    note = "；诉求人言语不文明，已劝导文明表达" if harass else ""

    if clear:
        reason = f"依条例第十二条第一款第一项：权责明确、管辖清晰，建议直接派{top.unit_name}（置信度{top.confidence:.2f}）"
        if top.supervise_unit_name:
            reason += f"，同时派{top.supervise_unit_name}督促协调"
        return decision(DIRECT, reason + note, "您的诉求已受理，我们将派相关单位办理，办理结果会及时反馈给您。",
                        target=top.unit_code, suggestions=suggestions, **extra)
    if location.district:
        gov = catalog.district_government(location.district)
        if gov is not None:
            coordination = Suggestion(gov.code, gov.name, gov.unit_type, catalog.type_name(gov.unit_type),
                                      round(max(location.confidence * 0.8, top.confidence if top else 0.0), 3),
                                      f"承办单位不明确，属地为{location.describe()}，依条例第十二条第一款第二项派区政府协调办理")
            suggestions = [coordination] + [s for s in suggestions if s.unit_code != gov.code][:2]
            return decision(DISTRICT, f"依条例第十二条第一款第二项：无法直接确定具体承办单位，但能确定属地为{location.district}，"
                                      f"建议派{gov.name}协调办理" + note,
                            "您的诉求已受理，我们将派属地区政府协调相关单位办理，办理结果会及时反馈给您。",
                            target=gov.code, suggestions=suggestions, **extra)
    return decision(NEED_INFO, "无法确定承办单位和属地：请向诉求人核实诉求发生的具体地点（区、街道乡镇或小区名称）" + note,
                    "请问您反映的问题具体发生在哪个区、哪个街道或小区？", suggestions=suggestions, **extra)
