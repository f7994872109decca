"""Text preparation for retrieval: normalisation (traditional → simplified, full-width → half-width) and jieba tokens."""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import jieba
import opencc

jieba.setLogLevel(60)
_converter = opencc.OpenCC("t2s")
_PUNCT = re.compile(r"[\s\W_]+", re.UNICODE)
# Function words that carry no topic; kept short on purpose (questions are short and every content word counts).
STOPWORDS = frozenset(
    "的 了 吗 呢 吧 啊 呀 嘛 么 是 在 我 你 您 他 她 它 我们 你们 请问 请 问 一下 想 要 能 能不能 可以 可不可以 怎么 怎样 "
    "如何 什么 哪 哪里 哪儿 哪些 多少 几 有 没有 和 与 及 或 还是 就 都 也 还 又 吗？ 呀 哦 嗯 哈 这个 那个 这 那 个 些 "
    "啥 咋 咋办 怎么办 需要 应该 会 得 地 着 过 给 让 把 被 对 从 到 为 为了 关于 现在 今年 你好 您好 谢谢".split()
)


@lru_cache(maxsize=4096)
def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text or "")
    text = _converter.convert(text)
    return re.sub(r"\s+", " ", text).strip().lower()


def tokens(text: str) -> list[str]:
    """Search tokens: jieba's search-mode segmentation of the normalised text, without punctuation and stopwords."""
    out = []
    for tok in jieba.cut_for_search(normalise(text)):
        tok = _PUNCT.sub("", tok)
        if tok and tok not in STOPWORDS:
            out.append(tok)
    return out


@lru_cache(maxsize=65536)
def char_bigrams(text: str) -> frozenset[str]:
    """Character bigrams of the normalised text without punctuation or spaces (surface similarity)."""
    t = _PUNCT.sub("", normalise(text))
    if len(t) < 2:
        return frozenset([t]) if t else frozenset()
    return frozenset(t[i:i + 2] for i in range(len(t) - 1))


def dice(a: frozenset[str], b: frozenset[str]) -> float:
    return 2.0 * len(a & b) / (len(a) + len(b)) if a and b else 0.0
