"""Classifier speed and memory: ``python -m benchmarks.classifier_bench [--model-dir DIR] [--out FILE]``.

Prints JSON: model load time, resident memory, single-request latency (p50/p95 of ``Classifier.predict``, reasons
included) and batch throughput (``predict_batch``) for 30-, 150- and 500-character requests, for float32
(PyTorch), PyTorch dynamic int8 and the ONNX Runtime int8 export (the default when available), on ``--threads`` CPU threads (default 2, the deployment setting).
"""
from __future__ import annotations

import argparse
import csv
import gc
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LENGTHS = (30, 150, 500)


def rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sample_texts(n_chars: int, count: int) -> list[str]:
    """Realistic requests of exactly ``n_chars`` characters, built from our test set (texts joined when short)."""
    texts = []
    for path in sorted((ROOT / "training_data" / "classifier").glob("test_*.csv")):
        with open(path, encoding="utf-8", newline="") as fh:
            texts += [r["text"] for r in csv.DictReader(fh) if r.get("text")]
    if not texts:
        texts = ["小区门口的饭馆油烟太大，熏得家里没法开窗，晚上还很吵，希望有关部门管一管。"]
    out, i = [], 0
    while len(out) < count:
        buf = ""
        while len(buf) < n_chars:
            buf += texts[i % len(texts)] + "。"
            i += 1
        out.append(buf[:n_chars])
    return out


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def bench_variant(model_dir: Path, backend: str, repeats: int, batch: int) -> dict:
    from classifier.service import Classifier

    gc.collect()
    before = rss_mb()
    t0 = time.perf_counter()
    clf = Classifier.load(model_dir, backend=backend)
    if clf.backend != backend:
        return {"backend": backend, "skipped": f"not available here (falls back to {clf.backend})"}
    load_s = time.perf_counter() - t0
    clf.predict("暖气不热，家里才十五度")  # warm-up (first call allocates)
    out = {"backend": backend, "load_seconds": round(load_s, 3), "rss_after_load_mb": round(rss_mb(), 1),
           "rss_model_mb": round(rss_mb() - before, 1), "by_length": {}}
    for n in LENGTHS:
        texts = sample_texts(n, repeats)
        for t in texts[:3]:
            clf.predict(t)
        lat = []
        for t in texts:
            s = time.perf_counter()
            clf.predict(t)
            lat.append((time.perf_counter() - s) * 1000)
        enc = []
        for t in texts[: max(10, repeats // 2)]:
            s = time.perf_counter()
            clf.encoder_logits([t])
            enc.append((time.perf_counter() - s) * 1000)
        btexts = sample_texts(n, batch)
        clf.predict_batch(btexts[:8])
        s = time.perf_counter()
        clf.predict_batch(btexts)
        bt = time.perf_counter() - s
        out["by_length"][str(n)] = {
            "single_p50_ms": round(statistics.median(lat), 2), "single_p95_ms": round(percentile(lat, 0.95), 2),
            "encoder_only_p50_ms": round(statistics.median(enc), 2),
            "batch_size": batch, "batch_texts_per_s": round(batch / bt, 1)}
    out["rss_peak_mb"] = round(rss_mb(), 1)
    del clf
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=60)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--variants", default="torch,torch-int8,onnx-int8", help="backends to measure")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import torch

    from benchmarks.report import emit

    torch.set_num_threads(args.threads)
    model_dir = args.model_dir or Path(os.environ.get("JSJB_CLASSIFIER_DIR") or ROOT / "var" / "models" /
                                       "classifier")
    if not (model_dir / "model.safetensors").is_file():
        print(f"no trained classifier in {model_dir}; run `make train-classifier` or set JSJB_CLASSIFIER_DIR",
              file=sys.stderr)
        return 1
    meta = json.loads((model_dir / "metrics.json").read_text(encoding="utf-8"))
    result = {"benchmark": "classifier", "model_dir": str(model_dir), "model_version": meta.get("model_version"),
              "encoder_layers": meta.get("config", {}).get("num_layers"), "threads": torch.get_num_threads(),
              "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
              "torch": torch.__version__, "target": {"single_p50_ms_150_chars": 10.0}, "variants": {}}
    for name in args.variants.split(","):
        result["variants"][name] = bench_variant(model_dir, name, args.repeats, args.batch)
    from classifier.service import Classifier

    result["served_backend"] = Classifier.load(model_dir).backend
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
