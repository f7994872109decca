"""Load benchmark of the dialogue: N concurrent simulated citizens talk to the running system through Rasa's REST channel.

    .venv/svc/bin/python -m benchmarks.chat_load --concurrency 20 --duration 60      # against `make run`'s servers
    .venv/svc/bin/python -m benchmarks.chat_load --start-system                      # starts both servers itself

Each simulated citizen plays realistic multi-turn conversations (a complaint taken through the intake form, a
consultation answered from the knowledge base, a status query, small talk), not one repeated message. Reports turn
latency p50/p95/p99, turns per second, errors, and — to show where the time goes — the NLU-only parse latency
(``POST /model/parse``) and the action-endpoint time measured by the services app (``GET /metrics/actions``).
Prints JSON (and writes it with ``--out``). Targets at 20 concurrent conversations on 2 cores: p95 ≤ 150 ms,
≥ 50 turns/s, 0 errors. ``--think MIN,MAX`` sets the pause between a citizen's messages (default 0-50 ms: the
capacity test, where 20 citizens in a closed loop wait 20 / throughput on average; ``--think 3,12`` shows the latency
people typing on a phone see).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import sys
import time
import uuid
from pathlib import Path

import httpx

from benchmarks import process_cpu
from benchmarks.report import emit

ROOT = Path(__file__).resolve().parent.parent

CONVERSATIONS: list[list[str]] = [
    ["你好", "我家楼下饭馆油烟太大，在朝阳区望京西园三区", "匿名", "不用保密", "对的，没问题"],
    ["居住证怎么办理", "有帮助，谢谢"],
    ["小区门口天天有人占道摆摊卖菜，晚上还有烧烤，海淀区学院路那边", "13800001111", "需要保密", "确认"],
    ["我上周反映的事怎么样了", "20260101-000001", "1111"],
    ["你是机器人吗", "你们能干啥", "好的谢谢", "再见"],
    ["暖气不热，家里才十五度，老人孩子都冻感冒了", "丰台区方庄芳城园一区", "13912345678", "不用", "对"],
    ["公积金租房能取吗", "没帮助", "不用了"],
    ["想表扬一下我们小区的物业经理，下雪天一早就带人扫雪", "朝阳区双井", "匿名", "对"],
]


PHONE_PATTERN = re.compile(r"1[3-9]\d{9}")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    idx = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return values[idx]


async def citizen(client: httpx.AsyncClient, rasa: str, deadline: float, seed: int, lat: list[float], errors: list[str],
                  think: tuple[float, float] = (0.0, 0.05)) -> None:
    rng = random.Random(seed)
    await asyncio.sleep(rng.uniform(0.0, think[1]))  # citizens arrive spread out, not all in the same instant
    while time.perf_counter() < deadline:
        sender = f"bench-{uuid.uuid4().hex[:12]}"
        # each simulated citizen has a phone of their own: with one shared number every new order would be compared
        # with all earlier ones of the run (repeat detection) and the benchmark would slow down as it goes
        phone = "13" + "".join(rng.choice("0123456789") for _ in range(9))
        for template in rng.choice(CONVERSATIONS):
            text = PHONE_PATTERN.sub(phone, template)
            if time.perf_counter() >= deadline:
                return
            started = time.perf_counter()
            try:
                resp = await client.post(f"{rasa}/webhooks/rest/webhook", json={"sender": sender, "message": text})
                if resp.status_code != 200 or not isinstance(resp.json(), list):
                    errors.append(f"HTTP {resp.status_code}")
                    break
            except httpx.HTTPError as exc:
                errors.append(type(exc).__name__)
                break
            lat.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(rng.uniform(*think))  # a person does not answer in zero time


async def parse_latency(client: httpx.AsyncClient, rasa: str, n: int = 100) -> dict:
    texts = [t for conv in CONVERSATIONS for t in conv]
    out = []
    for i in range(n):
        started = time.perf_counter()
        resp = await client.post(f"{rasa}/model/parse", json={"text": texts[i % len(texts)]})
        resp.raise_for_status()
        out.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": round(percentile(out, 50), 1), "p95_ms": round(percentile(out, 95), 1), "n": n}


async def run(rasa: str, api: str, concurrency: int, duration: float, think: tuple[float, float] = (0.0, 0.05),
              warmup: float = 0.0) -> dict:
    limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency + 4)
    async with httpx.AsyncClient(timeout=30.0, limits=limits) as client:
        nlu = await parse_latency(client, rasa)
        warmup_errors: list[str] = []
        if warmup > 0:  # the same load, not measured: caches filled, models and connections warm
            deadline = time.perf_counter() + warmup
            await asyncio.gather(*(citizen(client, rasa, deadline, 1000 + i, [], warmup_errors, think)
                                   for i in range(concurrency)))
        before = await _action_metrics(client, api)
        lat: list[float] = []
        errors: list[str] = []
        cpu_before = process_cpu.snapshot()
        started = time.perf_counter()
        deadline = started + duration
        await asyncio.gather(*(citizen(client, rasa, deadline, i, lat, errors, think) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu_after = process_cpu.snapshot()
        after = await _action_metrics(client, api)
    actions = _diff_metrics(before, after)
    turns = len(lat)
    result = {
        "benchmark": "chat_load",
        "concurrency": concurrency,
        "think_time_s": list(think),
        "warmup_s": warmup,
        "warmup_errors": len(warmup_errors),
        "duration_s": round(elapsed, 1),
        "turns": turns,
        "turns_per_s": round(turns / elapsed, 1) if elapsed else 0.0,
        "errors": len(errors),
        "error_kinds": sorted(set(errors)),
        "turn_latency_ms": {"p50": round(percentile(lat, 50), 1), "p95": round(percentile(lat, 95), 1),
                            "p99": round(percentile(lat, 99), 1),
                            "mean": round(statistics.fmean(lat), 1) if lat else None},
        "nlu_parse_latency_ms_unloaded": nlu,
        "action_endpoint": actions,
        "cpu_by_process": process_cpu.usage(cpu_before, cpu_after, elapsed, turns),
        "cores": os.cpu_count(),
        "targets": {"p95_ms": 150, "turns_per_s": 50, "errors": 0},
    }
    result["meets_targets"] = (result["turn_latency_ms"]["p95"] <= 150 and result["turns_per_s"] >= 50
                               and result["errors"] == 0)
    result["where_the_time_goes"] = _explain(result)
    return result


async def _action_metrics(client: httpx.AsyncClient, api: str) -> dict:
    try:
        resp = await client.get(f"{api}/metrics/actions")
        return resp.json() if resp.status_code == 200 else {}
    except httpx.HTTPError:
        return {}


def _diff_metrics(before: dict, after: dict) -> dict:
    out = {}
    for name, stats in after.get("actions", {}).items():
        prev = before.get("actions", {}).get(name, {"count": 0, "total_ms": 0.0})
        count = stats["count"] - prev["count"]
        if count > 0:
            out[name] = {"calls": count, "mean_ms": round((stats["total_ms"] - prev["total_ms"]) / count, 1)}
    return out


def _explain(result: dict) -> list[str]:
    notes = []
    p50 = result["turn_latency_ms"]["p50"]
    nlu = result["nlu_parse_latency_ms_unloaded"]["p50_ms"]
    notes.append(f"NLU parse alone (unloaded) p50 {nlu} ms of a {p50} ms turn p50 under load.")
    if result["action_endpoint"]:
        slowest = max(result["action_endpoint"].items(), key=lambda kv: kv[1]["mean_ms"])
        notes.append(f"slowest custom action: {slowest[0]} at {slowest[1]['mean_ms']} ms mean (services process).")
    cpu = result.get("cpu_by_process") or {}
    if cpu:
        parts = ", ".join(f"{group} {figures['cpu_ms_per_turn']} ms ({figures['cores']} cores)"
                          for group, figures in sorted(cpu.items(), key=lambda kv: -(kv[1]["cores"] or 0)))
        notes.append(f"CPU per turn on this {result.get('cores')}-core machine: {parts}.")
    notes.append("The rest of a turn is the Rasa process: NLU (featurisers and the linear intent classifier), the rule and memoization "
                 "policies, the tracker store (retrieve and save per message) and queueing: each Rasa worker runs one "
                 "event loop on one core, so turns queue behind each other under load (JSJB_RASA_WORKERS).")
    return notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rasa", default="http://127.0.0.1:5005")
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=0.0, metavar="SECONDS",
                        help="run the same load this long first, unmeasured (a system just started is cold)")
    parser.add_argument("--start-system", action="store_true", help="start both servers for the run")
    parser.add_argument("--think", default="0,0.05", metavar="MIN,MAX",
                        help="seconds a citizen takes before the next message, uniform in [MIN, MAX] (default 0,0.05: "
                             "the capacity test; e.g. 3,12 for people typing on a phone)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    try:
        think = tuple(float(v) for v in args.think.split(","))
        if len(think) != 2 or not 0 <= think[0] <= think[1]:
            raise ValueError
    except ValueError:
        parser.error(f"--think must be MIN,MAX seconds with 0 <= MIN <= MAX, not {args.think!r}")
    system = None
    if args.start_system:
        sys.path.insert(0, str(ROOT))
        from scripts.system import System

        system = System(log_dir=ROOT / "var" / "bench-logs")
        system.__enter__()
        args.rasa, args.api = system.rasa_url, system.api_url
    try:
        result = asyncio.run(run(args.rasa, args.api, args.concurrency, args.duration, think, args.warmup))
    finally:
        if system is not None:
            system.stop()
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
