"""Similarity of two requests for repeat detection (art. 11(3)): is the new request the same matter again?

Pure code: no model is imported here. The caller injects a sentence encoder (``encode(list[str]) -> rows of floats``,
e.g. ``encoder.embedder.get_embedder().encode_queries``) and hands :class:`EmbeddingSimilarity` to
``DispatchService(session, similarity=..., similarity_threshold=EmbeddingSimilarity.threshold)``. Without an encoder,
routing falls back to :func:`dispatch.routing.lexical_similarity` (character bigrams).

Why not the plain cosine: multilingual-e5-small puts any two Chinese hotline complaints at a cosine of 0.86–0.97, and
the same citizen's *different* matters at the same place (楼下饭馆油烟太大 / 楼下饭馆门口乱停车) score as high as
reworded repeats (暖气不热 / 供暖温度太低). Three steps separate them (the routing has already removed the place names,
which are compared separately):

1. **centring**: the mean embedding of a fixed set of varied hotline requests (:data:`BACKGROUND`) is subtracted
   before the cosine, which removes the direction every hotline text shares and spreads the scores out;
2. **what differs**: the verbatim common parts of the two texts (runs of ≥ 2 characters, e.g. "楼下饭馆", "小区门口的")
   are cut out and the remainders compared too — a repeat's remainders still mean the same thing, a different
   matter's remainders ("油烟太大" / "门口乱停车") do not;
3. the score is the mean of the two centred cosines.

Threshold (:attr:`EmbeddingSimilarity.threshold` = 0.40), chosen on 20 realistic reworded repeats and 24 different
matters of the same citizen, most at the same place (``tests/dispatch/test_repeat_similarity.py`` holds them), with
multilingual-e5-small and ``query:`` prompts: repeats score 0.32–0.63 and 15 of 20 reach 0.40; different matters
score −0.03–0.36 except one pair at the same gate (井盖丢了 / 路面塌了一个大坑, 0.46), which counts as a repeat. The
character-bigram fallback recognises none of these 20 repeats. A false repeat hides a new matter from the units while
a missed one only costs an agent a merge, so the threshold keeps a margin above the other different matters. The
threshold was chosen on the same pairs it is reported on: expect somewhat lower figures on new ones.
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from difflib import SequenceMatcher

Encode = Callable[[list[str]], Sequence[Sequence[float]]]

# Varied requests of the kinds the hotline receives (written for this purpose, not taken from any data set): their
# mean embedding is the common direction removed before comparing two requests.
BACKGROUND: tuple[str, ...] = (
    "屋里暖气片冰凉，问了物业也不管", "烧烤摊天天摆到半夜，烟熏火燎", "搅拌车凌晨进出工地，轰隆隆响",
    "人行道上的窨井盖松动，踩上去会翻", "干了半年活，包工头一分钱没给", "突然停电了，冰箱里的东西都坏了",
    "隧道里的照明灯灭了一半", "楼下的垃圾桶满了往外溢", "小区里的消防栓被圈进了私人院子",
    "地下室被人改成了群租房", "单元门的门锁坏了一个月", "业委会选举不公开",
    "早高峰地铁太挤，能不能加车", "电动自行车在楼道里充电", "街边商铺违规搭建雨棚",
    "水管爆了，水流了一地", "学校附近有黑车揽客", "健身步道上的塑胶跑道开裂",
    "雨水箅子被落叶堵死了", "开发商交房时的面积缩水", "网约车司机态度恶劣",
    "菜市场的秤缺斤短两", "社区医院开药不方便", "居住证到期了怎么续签",
    "生育津贴怎么申请", "退休金的计算方法是什么", "外地户口的孩子在北京上学要什么手续",
    "隔壁装修电钻声从早响到晚", "桥下积水很深，车辆熄火", "大风把广告牌吹得摇摇欲坠",
    "早上六点就有人在小区里抽陀螺", "餐馆后厨的泔水直接倒进雨水井", "河道里漂着死鱼，发臭",
    "村口的桥栏杆断了", "物业乱收二次供水费", "网店卖假货不给退",
    "租房合同到期，房东要涨一倍房租", "楼道的应急灯不亮", "老旧小区加装电梯的补贴怎么申请",
    "公共厕所没有纸也没人打扫", "房产中介强制收取服务费", "感谢派出所民警帮我找回了钱包",
    "建议公交站增加遮阳棚", "流浪猫太多，晚上叫个不停", "路口的斑马线磨没了",
    "小区地库收费标准不透明", "劳务派遣公司扣押身份证", "培训机构跑路不退学费",
)


def _unit(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def remove_common(a: str, b: str, min_len: int = 2) -> tuple[str, str]:
    """``a`` and ``b`` without the runs of ≥ ``min_len`` characters they share (a text left empty stays whole)."""
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    keep_a, keep_b = [True] * len(a), [True] * len(b)
    for block in matcher.get_matching_blocks():
        if block.size >= min_len:
            keep_a[block.a : block.a + block.size] = [False] * block.size
            keep_b[block.b : block.b + block.size] = [False] * block.size
    rest_a = "".join(ch for ch, keep in zip(a, keep_a) if keep).strip(" ，。,.、；;！!？?")
    rest_b = "".join(ch for ch, keep in zip(b, keep_b) if keep).strip(" ，。,.、；;！!？?")
    return rest_a or a, rest_b or b


class EmbeddingSimilarity:
    """``similarity(a, b) -> float`` from an injected sentence encoder (see the module docstring).

    Thread-safe; keeps the vectors of the last ``cache_size`` texts, so a request compared with several earlier
    orders is encoded once. Create one per process (the centring vector is computed on first use).
    """

    threshold: float = 0.40

    def __init__(self, encode: Encode, background: Sequence[str] = BACKGROUND, cache_size: int = 1024):
        self._encode = encode
        self._background = tuple(background)
        self._cache: OrderedDict[str, list[float]] = OrderedDict()
        self._cache_size = cache_size
        self._mean: list[float] | None = None
        self._lock = threading.Lock()

    def _centre(self) -> list[float]:
        if self._mean is None:
            rows = [list(map(float, row)) for row in self._encode(list(self._background))]
            self._mean = [sum(col) / len(rows) for col in zip(*rows)]
        return self._mean

    def vectors(self, texts: Sequence[str]) -> list[list[float]]:
        """Centred, unit-length vectors of ``texts`` (cached)."""
        with self._lock:
            mean = self._centre()
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
            if missing:
                for text, row in zip(missing, self._encode(missing)):
                    self._cache[text] = _unit([float(x) - m for x, m in zip(row, mean)])
            out = []
            for text in texts:
                self._cache.move_to_end(text)
                out.append(self._cache[text])
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            return out

    def __call__(self, a: str, b: str) -> float:
        a, b = (a or "").strip(), (b or "").strip()
        if not a or not b:
            return 0.0
        rest_a, rest_b = remove_common(a, b)
        va, vb, ra, rb = self.vectors([a, b, rest_a, rest_b])
        whole = sum(x * y for x, y in zip(va, vb))
        rest = sum(x * y for x, y in zip(ra, rb))
        return round((whole + rest) / 2, 4)
