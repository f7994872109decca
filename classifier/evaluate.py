"""Evaluate the classifier against a baseline: ``python -m classifier.evaluate --report-dir reports/classifier``.

Two test sets:

1. ``ours`` — our held-out ``training_data/classifier/test_*.csv``, all four heads, scored with the default model
   (the one set-up trains: our corpus + all shared data; reused from ``var/models/classifier`` when its training data
   and configuration equal the current ones, trained in this run otherwise);
2. ``shared`` — a fixed-seed stratified 20 % split of the shared real messages (first-level category), scored with a
   model trained in this run on the other 80 % plus our corpus.

For each, the BASELINE (character 1–3-gram TF-IDF + LinearSVC, scikit-learn) is trained on exactly the same rows in
the same run. The report (``report.md`` + ``report.json`` + PNG figures) has per-class precision/recall/F1, macro-F1,
accuracy, top-3 accuracy, expected calibration error, confusion matrices, reliability diagrams and the worst errors.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from .calibration import reliability, softmax
from .config import TrainConfig
from .data import CORPUS_DIR, SHARED_SPLIT_SEED, SHARED_TEST_SIZE, load_corpus, rows_fingerprint
from .labels import HEADS
from .service import Classifier
from .train import common_inputs, fit, gather_rows, save_model

log = logging.getLogger("classifier.evaluate")
TARGETS = {"shared_accuracy": 0.93, "shared_margin_over_baseline": 0.03, "ours_macro_f1_type": 0.90,
           "ours_macro_f1_category": 0.90, "ours_top3_unit_type": 0.95}


# ---------------------------------------------------------------------------------------------------------------
class Baseline:
    """Character n-gram TF-IDF + LinearSVC per head (the reference every score is compared with)."""

    def __init__(self, ngram_range=(1, 3), min_df: int = 2, C: float = 1.0) -> None:
        self.ngram_range, self.min_df, self.C = ngram_range, min_df, C
        self.models: dict = {}

    def fit(self, texts: list[str], labels: dict[str, list[str]]) -> Baseline:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.svm import LinearSVC

        self.vec = TfidfVectorizer(analyzer="char", ngram_range=self.ngram_range, sublinear_tf=True,
                                   min_df=self.min_df, dtype=np.float32)
        X = self.vec.fit_transform(texts)
        for head, ys in labels.items():
            keep = [i for i, v in enumerate(ys) if v]
            if len({ys[i] for i in keep}) >= 2:
                self.models[head] = LinearSVC(C=self.C, random_state=0).fit(X[keep], [ys[i] for i in keep])
        return self

    def scores(self, texts: list[str], head: str, classes: list[str]) -> np.ndarray:
        """Decision values over ``classes`` (a class the baseline never saw scores -inf)."""
        svm = self.models[head]
        d = svm.decision_function(self.vec.transform(texts))
        if d.ndim == 1:
            d = np.stack([-d, d], axis=1)
        out = np.full((len(texts), len(classes)), -np.inf, dtype=np.float64)
        pos = {c: i for i, c in enumerate(classes)}
        for j, c in enumerate(svm.classes_):
            if c in pos:
                out[:, pos[c]] = d[:, j]
        return out


# ---------------------------------------------------------------------------------------------------------------
def head_metrics(y_true: list[str], scores: np.ndarray, classes: list[str], probs: np.ndarray | None = None,
                 texts: list[str] | None = None, worst: int = 0) -> dict:
    """Accuracy, macro-F1, top-3 accuracy, per-class P/R/F1, confusion matrix (+ ECE and worst errors)."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    keep = [i for i, v in enumerate(y_true) if v in classes]
    idx = {c: i for i, c in enumerate(classes)}
    y = np.array([idx[y_true[i]] for i in keep])
    s = scores[keep]
    pred = s.argmax(1)
    top3 = np.argsort(-s, axis=1)[:, :3]
    present = sorted(set(y.tolist()) | set(pred.tolist()))
    p, r, f, n = precision_recall_fscore_support(y, pred, labels=present, zero_division=0)
    in_test = sorted(set(y.tolist()))
    _, _, f_macro, _ = precision_recall_fscore_support(y, pred, labels=in_test, average="macro", zero_division=0)
    out = {
        "n": len(keep),
        "accuracy": float((pred == y).mean()) if len(y) else None,
        "macro_f1": float(f_macro),
        "top3_accuracy": float(np.mean([y[i] in top3[i] for i in range(len(y))])) if len(y) else None,
        "per_class": {classes[c]: {"precision": float(p[k]), "recall": float(r[k]), "f1": float(f[k]),
                                   "support": int(n[k])} for k, c in enumerate(present)},
        "confusion": {"labels": [classes[c] for c in in_test],
                      "matrix": confusion_matrix(y, pred, labels=in_test).tolist()},
    }
    if probs is not None:
        pr = probs[keep]
        out["calibration"] = reliability(pr, y)
        out["ece"] = out["calibration"]["ece"]
        if worst and texts is not None:
            wrong = np.flatnonzero(pred != y)
            wrong = wrong[np.argsort(-pr[wrong, pred[wrong]])][:worst]
            out["worst_errors"] = [{"text": texts[keep[i]], "true": classes[y[i]], "predicted": classes[pred[i]],
                                    "prob": round(float(pr[i, pred[i]]), 3),
                                    "prob_true": round(float(pr[i, y[i]]), 3)} for i in wrong]
    return out


def truth_labels(rows: list[dict], head: str) -> list[str]:
    """The rows' labels for ``head`` ("" = unknown); second level as ``l1/l2`` keys (names alone are ambiguous: 其他)."""
    if head == "category_l2":
        return [f"{r['category_l1']}/{r['category_l2'].split('/')[-1]}" if r.get("category_l2") else "" for r in rows]
    return [r.get(head) or "" for r in rows]


def evaluate_model(clf: Classifier, rows: list[dict], heads: list[str], worst: int = 15) -> dict:
    texts = [r["text"] for r in rows]
    t0 = time.perf_counter()
    probs = clf.probabilities(texts)
    seconds = time.perf_counter() - t0
    fused = clf.logits(texts)
    out = {"seconds_per_text": seconds / max(1, len(texts))}
    for h in heads:
        classes = clf.labels.labels[h]
        truth = truth_labels(rows, h)
        m = head_metrics(truth, probs[h], classes, probs[h], texts, worst)
        raw = softmax(fused[h])
        keep = [i for i, v in enumerate(truth) if v in classes]
        y = np.array([classes.index(truth[i]) for i in keep])
        m["ece_uncalibrated"] = reliability(raw[keep], y)["ece"] if len(keep) else None
        m["coverage"] = f"{len(keep)}/{sum(1 for t in truth if t)}"  # test labels the model knows
        out[h] = m
    return out


def evaluate_baseline(base: Baseline, rows: list[dict], heads: list[str], label_lists: dict[str, list[str]]) -> dict:
    texts = [r["text"] for r in rows]
    out = {}
    for h in heads:
        if h not in base.models:
            continue
        classes = label_lists[h]
        truth = truth_labels(rows, h)
        out[h] = head_metrics(truth, base.scores(texts, h, classes), classes)
    return out


def baseline_labels(rows: list[dict], heads: list[str]) -> dict[str, list[str]]:
    return {h: [r.get(h) or "" for r in rows] for h in heads}


# ---------------------------------------------------------------------------------------------------------------
def plot_confusion(conf: dict, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    _use_cjk_font(font_manager, plt)
    labels, m = conf["labels"], np.array(conf["matrix"], dtype=float)
    norm = m / np.clip(m.sum(axis=1, keepdims=True), 1, None)
    size = max(5.0, 0.45 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if m[i, j]:
                ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=6,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_reliability(curves: dict[str, dict], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect")
    for name, cal in curves.items():
        bins = cal.get("bins") or []
        if not bins:
            continue
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o-", ms=4,
                label=f"{name} (ECE {cal['ece']:.3f})")
    ax.set_xlabel("confidence (top-1 probability)")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _use_cjk_font(font_manager, plt) -> None:
    for name in ("Noto Sans CJK SC", "Noto Sans CJK JP", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "SimHei",
                 "Source Han Sans SC", "AR PL UMing CN", "Droid Sans Fallback"):
        if any(f.name == name for f in font_manager.fontManager.ttflist):
            plt.rcParams["font.sans-serif"] = [name, "DejaVu Sans"]
            break
    plt.rcParams["axes.unicode_minus"] = False
    import warnings

    warnings.filterwarnings("ignore", message="Glyph .* missing from font")


# ---------------------------------------------------------------------------------------------------------------
def _reusable(model_dir: Path, rows: list[dict], cfg: TrainConfig) -> bool:
    try:
        m = json.loads((model_dir / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return m.get("data_fingerprint") == rows_fingerprint(rows) and m.get("config") == json.loads(
        json.dumps(cfg.to_dict()))


def run(report_dir: Path, encoder_dir: Path, cfg: TrainConfig, *, model_dir: Path | None = None,
        shared: Path | None | str = "default", retrain: bool = False) -> dict:
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    report: dict = {"generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    "targets": TARGETS, "test_sets": {}}
    test_rows = load_corpus("test")
    from .labels import load_taxonomy
    from .data import default_taxonomy_path

    taxonomy = load_taxonomy(default_taxonomy_path()) or None

    # 1. our test set, default model
    rows, _, imports = gather_rows(shared=shared, shared_part="all")
    default_dir = model_dir
    if default_dir is None:
        from core.config import get_settings

        default_dir = get_settings().resolved_classifier_dir
    if not retrain and default_dir.exists() and _reusable(default_dir, rows, cfg):
        clf = Classifier.load(default_dir)
        train_info = json.loads((default_dir / "metrics.json").read_text(encoding="utf-8"))
        report["default_model"] = {"dir": str(default_dir), "reused": True}
    else:
        print("training the default model (our corpus + all shared data)", file=sys.stderr, flush=True)
        clf, train_info = fit(rows, encoder_dir, cfg, taxonomy=taxonomy)
        save_model(clf, train_info, report_dir / "model-default", encoder_dir, imports)
        clf = Classifier.load(report_dir / "model-default")
        report["default_model"] = {"dir": str(report_dir / "model-default"), "reused": False}
    report["default_model"].update({"version": clf.version, "training_seconds": train_info["seconds"]["total"],
                                    "rows": train_info["rows"], "rows_by_source": train_info["rows_by_source"]})
    heads = [h for h in HEADS if clf.labels.size(h)]
    base = Baseline().fit([r["text"] for r in rows], baseline_labels(rows, heads))
    ours = {"rows": len(test_rows), "model": evaluate_model(clf, test_rows, heads),
            "baseline": evaluate_baseline(base, test_rows, heads, clf.labels.labels)}
    # the served backend (above) against the float32 PyTorch model and PyTorch's own dynamic int8
    texts = [r["text"] for r in test_rows]
    served = clf.probabilities(texts)
    ours["backend"] = clf.backend
    ours["backends"] = {}
    for backend in ("torch", "torch-int8"):
        if backend == clf.backend:
            continue
        other = Classifier.load(Path(report["default_model"]["dir"]), backend=backend).probabilities(texts)
        entry = {}
        for h in heads:
            truth = truth_labels(test_rows, h)
            entry[h] = {"accuracy": head_metrics(truth, other[h], clf.labels.labels[h])["accuracy"],
                        "top1_agreement_with_served": float((other[h].argmax(1) == served[h].argmax(1)).mean())}
        ours["backends"][backend] = entry
    ours["annotator_agreement"] = annotator_agreement(len(test_rows))
    report["test_sets"]["ours"] = ours

    # 2. the shared real data: 80 % (+ our corpus) -> 20 %
    rows_s, shared_test, imports_s = gather_rows(shared=shared, shared_part="train")
    if shared_test:
        print(f"training the split model (80 % shared + our corpus: {len(rows_s)} rows)", file=sys.stderr,
              flush=True)
        clf_s, info_s = fit(rows_s, encoder_dir, cfg, taxonomy=taxonomy, version_tag="-split80")
        save_model(clf_s, info_s, report_dir / "model-split80", encoder_dir, imports_s)
        clf_s = Classifier.load(report_dir / "model-split80")  # scored as served (same backend as the default)
        base_s = Baseline().fit([r["text"] for r in rows_s], baseline_labels(rows_s, ["category_l1"]))
        report["test_sets"]["shared"] = {
            "rows": len(shared_test), "split": {"test_size": SHARED_TEST_SIZE, "seed": SHARED_SPLIT_SEED,
                                                "stratified_by": "category_l1"},
            "training_rows": info_s["rows"], "training_seconds": info_s["seconds"]["total"],
            "model": evaluate_model(clf_s, shared_test, ["category_l1"]),
            "baseline": evaluate_baseline(base_s, shared_test, ["category_l1"], clf_s.labels.labels)}
    else:
        report["test_sets"]["shared"] = {"rows": 0, "note": "shared data not found; skipped"}

    report["checks"] = _checks(report)
    report["seconds"] = round(time.perf_counter() - started, 1)
    _figures(report, report_dir)
    (report_dir / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    (report_dir / "report.md").write_text(render_markdown(report), encoding="utf-8")
    return report


def annotator_agreement(n_rows: int, corpus_dir: Path = CORPUS_DIR) -> dict | None:
    """How often two annotators labelled the test set alike before adjudication, per head: 1 - disputed fields / rows,
    from the newest ``annotation/test_adjudication_*.csv`` (one row per disputed field; training_data/README.md).
    The ceiling to read the model's scores against; None when the test set has no such record."""
    records = sorted(Path(corpus_dir).glob("annotation/test_adjudication_*.csv"))
    if not records or not n_rows:
        return None
    with open(records[-1], encoding="utf-8", newline="") as fh:
        disputed = [row["field"] for row in csv.DictReader(fh)]
    heads = ("request_type", "category_l1", "unit_type")
    return {"record": str(records[-1].relative_to(corpus_dir)), "rows": n_rows,
            **{h: round(1.0 - disputed.count(h) / n_rows, 3) for h in heads}}


def _checks(report: dict) -> dict:
    ours = report["test_sets"]["ours"]["model"]
    out = {
        "ours_macro_f1_type": ours["request_type"]["macro_f1"],
        "ours_macro_f1_category": ours["category_l1"]["macro_f1"],
        "ours_top3_unit_type": ours["unit_type"]["top3_accuracy"],
    }
    sh = report["test_sets"].get("shared", {})
    if sh.get("rows"):
        acc, bacc = sh["model"]["category_l1"]["accuracy"], sh["baseline"]["category_l1"]["accuracy"]
        out["shared_accuracy"] = acc
        out["shared_margin_over_baseline"] = acc - bacc
    return {k: {"value": v, "target": TARGETS[k], "met": bool(v is not None and v >= TARGETS[k])}
            for k, v in out.items()}


def _figures(report: dict, d: Path) -> None:
    figs = {}
    ours = report["test_sets"]["ours"]
    for h in ("category_l1", "request_type", "unit_type"):
        name = f"confusion_ours_{h}.png"
        plot_confusion(ours["model"][h]["confusion"], f"ours / {h} (model)", d / name)
        figs[f"confusion_ours_{h}"] = name
    plot_reliability({h: ours["model"][h]["calibration"] for h in ours["model"] if isinstance(ours["model"][h], dict)
                      and "calibration" in ours["model"][h]}, "reliability, our test set (calibrated)",
                     d / "calibration_ours.png")
    figs["calibration_ours"] = "calibration_ours.png"
    sh = report["test_sets"].get("shared", {})
    if sh.get("rows"):
        plot_confusion(sh["model"]["category_l1"]["confusion"], "shared 20% / category_l1 (model)",
                       d / "confusion_shared_category_l1.png")
        plot_reliability({"category_l1": sh["model"]["category_l1"]["calibration"]},
                         "reliability, shared 20% split", d / "calibration_shared.png")
        figs["confusion_shared_category_l1"] = "confusion_shared_category_l1.png"
        figs["calibration_shared"] = "calibration_shared.png"
    report["figures"] = figs


def render_markdown(r: dict) -> str:
    f = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    dm = r["default_model"]
    L = [f"# Classifier evaluation ({r['generated_at']})", "",
         f"Default model `{dm['version']}` ({'reused from ' + dm['dir'] if dm['reused'] else 'trained in this run'}; "
         f"training {dm['training_seconds']} s; rows {dm['rows']['total']}: {dm['rows_by_source']}).",
         f"Evaluation run: {r['seconds']} s. Baseline: character 1–3-gram TF-IDF (sublinear tf, min_df 2) + "
         "LinearSVC (C=1), trained on the same rows in this run.", "", "## Targets", "",
         "| check | value | target | met |", "|---|---|---|---|"]
    for k, c in r["checks"].items():
        L.append(f"| {k} | {f(c['value'])} | {c['target']} | {'yes' if c['met'] else '**no**'} |")
    for name, title in (("ours", "Our test set (test_a/b/c.csv)"), ("shared", "Shared real data, held-out 20 %")):
        ts = r["test_sets"].get(name, {})
        if not ts.get("rows"):
            L += ["", f"## {title}", "", ts.get("note", "not evaluated")]
            continue
        L += ["", f"## {title} — {ts['rows']} texts", ""]
        agreement = ts.get("annotator_agreement")
        if name == "ours" and agreement:
            L += [f"Label agreement of two independent annotators on these texts before adjudication (the ceiling "
                  f"to read the scores against; `{agreement['record']}`, training_data/README.md): request_type "
                  f"{f(agreement['request_type'])}, category_l1 {f(agreement['category_l1'])}, unit_type "
                  f"{f(agreement['unit_type'])}.", ""]
        if name == "shared":
            L.append(f"Split model trained on {ts['training_rows']['total']} rows in {ts['training_seconds']} s.")
            L.append("")
        L += ["| head | system | accuracy | macro-F1 | top-3 acc | ECE (calibrated) | ECE (T=1) |",
              "|---|---|---|---|---|---|---|"]
        for h, m in ts["model"].items():
            if not isinstance(m, dict):
                continue
            L.append(f"| {h} | model | {f(m['accuracy'])} | {f(m['macro_f1'])} | {f(m['top3_accuracy'])} | "
                     f"{f(m.get('ece'))} | {f(m.get('ece_uncalibrated'))} |")
            b = ts["baseline"].get(h)
            if b:
                L.append(f"| {h} | baseline | {f(b['accuracy'])} | {f(b['macro_f1'])} | {f(b['top3_accuracy'])} "
                         "| – | – |")
        if name == "ours" and "backends" in ts:
            L += ["", f"Served backend: **{ts['backend']}**. Other backends of the same weights:", ""]
            for b, entry in ts["backends"].items():
                L.append(f"- {b}: accuracy " + ", ".join(f"{h} {f(e['accuracy'])}" for h, e in entry.items())
                         + "; top-1 agreement with the served backend " + ", ".join(
                             f"{h} {f(e['top1_agreement_with_served'])}" for h, e in entry.items()))
        for h, m in ts["model"].items():
            if not isinstance(m, dict) or h == "category_l2":
                continue
            L += ["", f"### {name} / {h}: per class (model vs baseline F1)", "",
                  "| class | precision | recall | F1 | support | baseline F1 |", "|---|---|---|---|---|---|"]
            bpc = ts["baseline"].get(h, {}).get("per_class", {})
            for c, pc in sorted(m["per_class"].items(), key=lambda kv: -kv[1]["support"]):
                L.append(f"| {c} | {f(pc['precision'])} | {f(pc['recall'])} | {f(pc['f1'])} | {pc['support']} | "
                         f"{f(bpc.get(c, {}).get('f1'))} |")
        L += ["", f"### {name}: worst errors (most confident wrong, category_l1)", "",
              "| text | true | predicted | p(pred) | p(true) |", "|---|---|---|---|---|"]
        for e in ts["model"]["category_l1"].get("worst_errors", []):
            text = e["text"].replace("|", "｜")
            L.append(f"| {text[:80]}{'…' if len(text) > 80 else ''} | {e['true']} | {e['predicted']} | "
                     f"{e['prob']:.2f} | {e['prob_true']:.2f} |")
    L += ["", "## Figures", ""] + [f"- {k}: ![{k}]({v})" for k, v in r.get("figures", {}).items()]
    return "\n".join(L) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Evaluate the classifier against the TF-IDF + LinearSVC baseline")
    ap.add_argument("--report-dir", type=Path, default=Path("reports/classifier"))
    ap.add_argument("--encoder", type=Path, default=None)
    ap.add_argument("--model-dir", type=Path, default=None, help="default model to reuse when its data matches")
    ap.add_argument("--retrain", action="store_true", help="always train the default model in this run")
    ap.add_argument("--shared-data", default="default")
    ap.add_argument("--config", type=Path)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg, encoder_dir, shared = common_inputs(args)
    report = run(args.report_dir, encoder_dir, cfg, model_dir=args.model_dir, shared=shared, retrain=args.retrain)
    print(json.dumps({k: round(c["value"], 4) if c["value"] is not None else None
                      for k, c in report["checks"].items()}, ensure_ascii=False))
    print(f"report: {args.report_dir / 'report.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
