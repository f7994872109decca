"""Pure text normalisation for citizens' Chinese messages (no Rasa imports; stdlib + opencc).

``normalize(text)`` returns the normalised text, a trace of what changed and an index map from every
position of the original text to the position of the normalised text, so entity annotations of
training examples can be moved along with the text.

Steps, in order:

1. traditional → simplified Chinese with OpenCC (``t2s`` by default). The conversion is applied to the
   whole string; when that changes the length (phrase conversions, rare) it falls back to converting
   character by character so that the index map stays exact.
2. full-width ASCII letters, digits and symbols → half-width (``Ａ１`` → ``a1``); the ideographic space
   → a space.
3. Chinese full-width punctuation → one fixed ASCII equivalent (``，`` → ``,``, ``。`` → ``.``, ``？`` →
   ``?`` ...), so that ``，`` and ``,`` are one token for the featurisers. ``、《》“”‘’【】`` map to
   fixed ASCII forms as well (see ``PUNCTUATION``); nothing else is touched.
4. emoji and pictographs are removed (replaced by a space before the whitespace step) and recorded
   in the trace.
5. English letters are lower-cased.
6. runs of whitespace collapse to one space; leading/trailing whitespace is stripped.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import List, Tuple

PUNCTUATION = {
    "，": ",",
    "。": ".",
    "？": "?",
    "！": "!",
    "：": ":",
    "；": ";",
    "（": "(",
    "）": ")",
    "【": "[",
    "】": "]",
    "《": "<",
    "》": ">",
    "“": '"',
    "”": '"',
    "‘": "'",
    "’": "'",
    "、": ",",
    "～": "~",
    "—": "-",
    "－": "-",
    "…": ".",
    "　": " ",
}

# Emoji and pictographs: the main emoji blocks, dingbats, variation selectors, the zero-width joiner,
# skin-tone modifiers and regional indicators (flags).
_EMOJI = re.compile(
    "["
    "\U0001F000-\U0001FAFF"  # mahjong .. symbols & pictographs extended-A (incl. emoticons, transport)
    "\U00002600-\U000027BF"  # misc symbols, dingbats
    "\U0001F1E6-\U0001F1FF"  # regional indicators
    "\U00002B00-\U00002BFF"  # arrows, stars (⭐)
    "\U00002300-\U000023FF"  # misc technical (⌚ ⏰)
    "\uFE0F\uFE0E\u200D"  # variation selectors, zero-width joiner
    "\U000E0020-\U000E007F"  # tag characters
    "]"
)


@dataclass
class NormalizationTrace:
    """What the normaliser changed in one message (stored on the Rasa message for inspection)."""

    emoji: List[str] = field(default_factory=list)
    traditional_converted: int = 0
    full_width_converted: int = 0
    changed: bool = False

    def as_dict(self) -> dict:
        return {
            "emoji": list(self.emoji),
            "traditional_converted": self.traditional_converted,
            "full_width_converted": self.full_width_converted,
            "changed": self.changed,
        }


@lru_cache(maxsize=4)
def _converter(config: str):
    import opencc

    return opencc.OpenCC(config)


def to_simplified(text: str, config: str = "t2s") -> str:
    """Traditional → simplified with the same length as the input (see module docstring)."""
    if not text:
        return text
    converter = _converter(config)
    converted = converter.convert(text)
    if len(converted) == len(text):
        return converted
    out = []
    for ch in text:
        c = converter.convert(ch)
        out.append(c if len(c) == 1 else ch)
    return "".join(out)


def _half_width(ch: str) -> str:
    code = ord(ch)
    if 0xFF01 <= code <= 0xFF5E:  # full-width ASCII block
        return chr(code - 0xFEE0)
    return ch


def normalize(text: str, opencc_config: str = "t2s") -> Tuple[str, NormalizationTrace, List[int]]:
    """Normalise ``text``.

    Returns ``(normalised, trace, index_map)`` where ``index_map[i]`` is the position in the normalised
    text of the original character ``i`` (``len(text)`` entries plus one for the end position). A removed
    character maps to the position of the next kept character.
    """
    trace = NormalizationTrace()
    if not text:
        return text or "", trace, [0]

    simplified = to_simplified(text, opencc_config)
    trace.traditional_converted = sum(1 for a, b in zip(text, simplified) if a != b)

    # character-wise steps that keep a 1:1 correspondence (emoji become spaces)
    chars: List[str] = []
    for ch in simplified:
        if _EMOJI.match(ch):
            if ch not in "\uFE0F\uFE0E\u200D" and not ("\U000E0020" <= ch <= "\U000E007F"):
                if ch.isprintable() and unicodedata.category(ch) != "Sk" and not ("\U0001F3FB" <= ch <= "\U0001F3FF"):
                    trace.emoji.append(ch)
            chars.append(" ")
            continue
        if ch in PUNCTUATION:
            chars.append(PUNCTUATION[ch])
            continue
        half = _half_width(ch)
        if half != ch:
            trace.full_width_converted += 1
        chars.append(half.lower() if half.isascii() else half)

    # whitespace collapse with an index map
    out: List[str] = []
    index_map: List[int] = []
    pending_space = False
    for ch in chars:
        if ch.isspace():
            pending_space = bool(out)  # no leading space
            index_map.append(len(out) + (1 if pending_space else 0))
            continue
        if pending_space:
            out.append(" ")
            pending_space = False
        index_map.append(len(out))
        out.append(ch)
    index_map.append(len(out))
    normalised = "".join(out)
    # positions that pointed past a trailing (dropped) space must not exceed the text length
    index_map = [min(i, len(normalised)) for i in index_map]
    trace.changed = normalised != text
    return normalised, trace, index_map


def remap_span(index_map: List[int], start: int, end: int) -> Tuple[int, int]:
    """Move a ``[start, end)`` span of the original text onto the normalised text."""
    new_start = index_map[start]
    # end: position after the last kept character of the span
    last = end - 1
    new_end = index_map[last] + 1 if last >= start else new_start
    return new_start, max(new_start, new_end)
