"""Surface similarity of a question to entries' phrasings: the best character-bigram Dice per entry.

The bigrams of every phrasing are turned into integer ids when the entry is indexed and saved with the index
snapshot, so a question costs a few array operations over its candidates' ids (no set per phrasing, no first-use
cost: at 10k+ entries most candidates of a question had never been seen by the process, and computing their bigrams
then cost ~1.6 ms per question). The values equal ``max(dice(question, phrasing) for phrasing in phrasings)`` with
:func:`knowledge_base.text.dice`.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from knowledge_base.text import char_bigrams, dice

VOCAB_FILE = "surface_vocab.json"
ARRAYS_FILE = "surface.npz"


class PhrasingBigrams:
    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}
        # slug -> (bigram ids of all its phrasings, concatenated; bigram count per phrasing)
        self.by_slug: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def encode(self, phrasings: tuple[str, ...] | list[str]) -> tuple[np.ndarray, np.ndarray]:
        grams = [char_bigrams(p) for p in phrasings]
        ids = np.fromiter((self.vocab.setdefault(g, len(self.vocab)) for gs in grams for g in gs), dtype=np.int32)
        return ids, np.fromiter((len(gs) for gs in grams), dtype=np.int32, count=len(grams))

    def add(self, slug: str, phrasings: tuple[str, ...] | list[str]) -> None:
        self.by_slug[slug] = self.encode(phrasings)

    def remove(self, slug: str) -> None:
        self.by_slug.pop(slug, None)

    def best_dice(self, qgrams: frozenset[str], slugs: list[str]) -> np.ndarray:
        """Best Dice of the question's bigrams against any phrasing of each entry (0 for an unknown slug)."""
        empty = (np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int32))
        parts = [self.by_slug.get(s, empty) for s in slugs]
        out = np.zeros(len(parts), dtype=np.float32)
        qids = np.fromiter((self.vocab[g] for g in qgrams if g in self.vocab), dtype=np.int32)
        if not qgrams or not len(qids) or not parts:
            return out
        ids = np.concatenate([ids for ids, _ in parts])
        lengths = np.concatenate([n for _, n in parts])
        if not len(lengths):
            return out
        owner = np.repeat(np.arange(len(lengths)), lengths)  # phrasing of each bigram
        shared = np.bincount(owner[np.isin(ids, qids)], minlength=len(lengths))
        with np.errstate(invalid="ignore", divide="ignore"):
            scores = np.where(lengths > 0, 2.0 * shared / (len(qgrams) + lengths), 0.0)
        counts = np.fromiter((len(n) for _, n in parts), dtype=np.int64, count=len(parts))
        has = counts > 0
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        out[has] = np.maximum.reduceat(scores, starts[has])
        return out

    @staticmethod
    def dice_with(qgrams: frozenset[str], phrasings: tuple[str, ...] | list[str]) -> float:
        """Best Dice against phrasings that are not indexed (a draft being previewed): the set computation, so that a
        preview never adds its bigrams to the served index's vocabulary."""
        return max((dice(qgrams, char_bigrams(p)) for p in phrasings), default=0.0)

    # ------------------------------------------------------------------ persistence (with the index snapshot)

    def save(self, folder: Path, slugs: list[str]) -> None:
        """Write the arrays of ``slugs`` (in this order) and the vocabulary."""
        parts = [self.by_slug[s] for s in slugs]
        ids = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, dtype=np.int32)
        lengths = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, dtype=np.int32)
        np.savez(Path(folder) / ARRAYS_FILE, ids=ids, lengths=lengths)
        (Path(folder) / VOCAB_FILE).write_text(json.dumps(list(self.vocab), ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path, phrasings: dict[str, tuple[str, ...]]) -> PhrasingBigrams:
        """Read what :meth:`save` wrote for ``phrasings`` (slug -> phrasings, in the saved order); a snapshot written
        before these files existed is encoded from the phrasings instead."""
        table = cls()
        folder = Path(folder)
        if not (folder / ARRAYS_FILE).exists() or not (folder / VOCAB_FILE).exists():
            for slug, texts in phrasings.items():
                table.add(slug, texts)
            return table
        vocab = json.loads((folder / VOCAB_FILE).read_text(encoding="utf-8"))
        table.vocab = {g: i for i, g in enumerate(vocab)}
        with np.load(folder / ARRAYS_FILE) as arrays:
            ids, lengths = arrays["ids"], arrays["lengths"]
        n_phrasings = np.fromiter((len(p) for p in phrasings.values()), dtype=np.int64, count=len(phrasings))
        if len(lengths) != int(n_phrasings.sum()) or len(ids) != int(lengths.sum()):
            raise ValueError(f"{folder / ARRAYS_FILE} does not match the snapshot's phrasings")
        phrasing_end = np.cumsum(n_phrasings)
        bigram_end = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
        start_p = 0
        for slug, end_p in zip(phrasings, phrasing_end.tolist()):
            table.by_slug[slug] = (ids[bigram_end[start_p]:bigram_end[end_p]], lengths[start_p:end_p])
            start_p = end_p
        return table
