"""Temperature scaling and calibration measures (expected calibration error, reliability bins)."""
from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def nll(logits: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> float:
    p = softmax(logits, temperature)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1.0))))


def fit_temperature(logits: np.ndarray, y: np.ndarray, lo: float = 0.05, hi: float = 20.0) -> float:
    """The temperature T > 0 minimising the negative log-likelihood of ``softmax(logits / T)`` on held-out data.

    A golden-section search over log T (the NLL is unimodal in T); returns 1.0 when there is no data.
    """
    y = np.asarray(y)
    keep = y >= 0
    logits, y = np.asarray(logits)[keep], y[keep]
    if len(y) == 0:
        return 1.0
    a, b = np.log(lo), np.log(hi)
    g = (np.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = nll(logits, y, np.exp(c)), nll(logits, y, np.exp(d))
    for _ in range(60):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = nll(logits, y, np.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = nll(logits, y, np.exp(d))
    return float(np.exp((a + b) / 2))


def reliability(probs: np.ndarray, y: np.ndarray, n_bins: int = 15) -> dict:
    """Top-1 confidence vs accuracy in equal-width bins, and the expected calibration error (ECE).

    ECE = sum over bins of (bin size / n) * |accuracy(bin) - mean confidence(bin)|.
    """
    y = np.asarray(y)
    keep = y >= 0
    probs, y = np.asarray(probs)[keep], y[keep]
    if len(y) == 0:
        return {"ece": None, "bins": [], "n": 0}
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins, ece = [], 0.0
    for i in range(n_bins):
        sel = (conf > edges[i]) & (conf <= edges[i + 1]) if i else (conf >= edges[0]) & (conf <= edges[1])
        if not sel.any():
            continue
        acc, mc = float(correct[sel].mean()), float(conf[sel].mean())
        ece += sel.mean() * abs(acc - mc)
        bins.append({"lo": float(edges[i]), "hi": float(edges[i + 1]), "count": int(sel.sum()), "accuracy": acc,
                     "confidence": mc})
    return {"ece": float(ece), "bins": bins, "n": int(len(y))}


def ece(probs: np.ndarray, y: np.ndarray, n_bins: int = 15) -> float | None:
    return reliability(probs, y, n_bins)["ece"]
