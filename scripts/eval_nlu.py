#!/usr/bin/env python3
"""``make eval-nlu``: evaluate the trained Rasa NLU on the held-out test set and write a report for evaluators.

Runs ``rasa test nlu`` (Rasa environment) on ``tests/bot/nlu_test/test_nlu.yml`` — examples written independently of
the training data and never trained on — then summarises Rasa's own outputs into ``reports/nlu/REPORT.md`` and
``reports/nlu/summary.json``: per-intent precision/recall/F1, macro-F1, entity scores, the confusion-matrix image and
the misclassified examples. Exits non-zero when a target is missed (intent macro-F1 ≥ 0.90, emergency recall 1.0).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_MACRO_F1 = 0.90
EMERGENCY_INTENTS_PREFIX = "emergency"


def run_rasa_test(model: Path, test_file: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    cmd = [str(ROOT / ".venv" / "rasa" / "bin" / "python"), "-m", "rasa", "test", "nlu", "--model", str(model),
           "--nlu", str(test_file), "--out", str(out), "--domain", "domain.yml", "--successes"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2",
           "JSJB_ROOT": str(ROOT)}
    subprocess.run(cmd, cwd=ROOT / "bot", env=env, check=True)


def summarise(out: Path) -> dict:
    intents = json.loads((out / "intent_report.json").read_text())
    per_intent = {k: v for k, v in intents.items() if isinstance(v, dict) and "f1-score" in v and k not in
                  ("macro avg", "weighted avg", "micro avg")}
    macro = intents.get("macro avg", {})
    emergency = {k: v["recall"] for k, v in per_intent.items() if k.startswith(EMERGENCY_INTENTS_PREFIX)}
    entity_reports = {}
    for name in sorted(out.glob("*EntityExtractor_report.json")) + sorted(out.glob("*Extractor_report.json")):
        data = json.loads(name.read_text())
        entity_reports[name.stem.replace("_report", "")] = {
            k: {m: round(v[m], 3) for m in ("precision", "recall", "f1-score") if m in v} | {"support": v.get("support")}
            for k, v in data.items() if isinstance(v, dict) and "f1-score" in v
        }
    errors = json.loads((out / "intent_errors.json").read_text()) if (out / "intent_errors.json").exists() else []
    return {
        "intent_macro_f1": round(macro.get("f1-score", 0.0), 4),
        "intent_accuracy": round(intents.get("accuracy", 0.0), 4) if isinstance(intents.get("accuracy"), float) else None,
        "emergency_recall": emergency,
        "per_intent": {k: {m: round(v[m], 3) for m in ("precision", "recall", "f1-score")} | {"support": v["support"]}
                       for k, v in sorted(per_intent.items())},
        "entities": entity_reports,
        "misclassified": [{"text": e["text"], "expected": e["intent"], "predicted": e["intent_prediction"]["name"],
                           "confidence": round(e["intent_prediction"]["confidence"], 3)} for e in errors],
        "targets": {"intent_macro_f1": TARGET_MACRO_F1, "emergency_recall": 1.0},
    }


def write_markdown(summary: dict, out: Path, test_file: Path) -> None:
    lines = ["# NLU evaluation (held-out test set)", "",
             f"Test set: `{test_file.relative_to(ROOT)}` — written independently of the training data, never trained on.", "",
             f"- intent macro-F1: **{summary['intent_macro_f1']:.3f}** (target ≥ {TARGET_MACRO_F1})",
             f"- intent accuracy: {summary['intent_accuracy']}",
             f"- emergency recall: {summary['emergency_recall']} (target 1.0)", "",
             "## Per intent", "", "| intent | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for k, v in summary["per_intent"].items():
        lines.append(f"| {k} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1-score']:.3f} | {v['support']} |")
    lines += ["", "## Entities", ""]
    for extractor, labels in summary["entities"].items():
        lines += [f"### {extractor}", "", "| entity | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        for k, v in labels.items():
            lines.append(f"| {k} | {v.get('precision', 0):.3f} | {v.get('recall', 0):.3f} | {v.get('f1-score', 0):.3f} | {v.get('support')} |")
        lines.append("")
    lines += ["## Confusion matrix", "", "![intent confusion matrix](intent_confusion_matrix.png)", "",
              f"## Misclassified examples ({len(summary['misclassified'])})", "", "| text | expected | predicted | confidence |",
              "|---|---|---|---|"]
    for e in summary["misclassified"]:
        lines.append(f"| {e['text']} | {e['expected']} | {e['predicted']} | {e['confidence']} |")
    (out / "REPORT.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=ROOT / "var" / "models" / "rasa" / "bot.tar.gz")
    parser.add_argument("--test-file", type=Path, default=ROOT / "tests" / "bot" / "nlu_test" / "test_nlu.yml")
    parser.add_argument("--report-dir", type=Path, default=ROOT / "reports" / "nlu")
    args = parser.parse_args(argv)
    out = args.report_dir.resolve()
    run_rasa_test(args.model.resolve(), args.test_file.resolve(), out)
    summary = summarise(out)
    (out / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=2))
    write_markdown(summary, out, args.test_file.resolve())
    print(json.dumps({k: summary[k] for k in ("intent_macro_f1", "intent_accuracy", "emergency_recall")},
                     ensure_ascii=False, indent=2))
    print(f"report: {out / 'REPORT.md'}")
    ok = summary["intent_macro_f1"] >= TARGET_MACRO_F1 and all(v >= 1.0 for v in summary["emergency_recall"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
