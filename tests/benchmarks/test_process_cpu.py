"""The chat benchmark's account of where the machine's CPU went: processes found by command line, time from /proc."""
import os
import subprocess
import sys
import time

import pytest

from benchmarks import process_cpu

pytestmark = pytest.mark.skipif(not process_cpu.PROC.is_dir(), reason="needs Linux's /proc")


WORKER = """
import sys, time
print("ready", flush=True)
sys.stdin.readline()
start = time.process_time()
while time.process_time() - start < 0.3:
    pass
print("done", flush=True)
time.sleep(30)
"""


def test_a_busy_rasa_process_is_found_and_its_cpu_counted_per_turn():
    # a process whose command line names the Rasa server: 0.3 s of CPU between the two snapshots
    worker = subprocess.Popen([sys.executable, "-c", WORKER, "bot.server", "run"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout.readline().strip() == "ready"
        before = process_cpu.snapshot()
        started = time.perf_counter()
        worker.stdin.write("go\n")
        worker.stdin.flush()
        assert worker.stdout.readline().strip() == "done"
        after = process_cpu.snapshot()
        elapsed = time.perf_counter() - started
    finally:
        worker.kill()
        worker.wait()
    pid = str(worker.pid)
    assert pid in before["rasa"] and pid in after["rasa"]
    assert pid not in after["services"]
    usage = process_cpu.usage({"rasa": {pid: before["rasa"][pid]}}, {"rasa": {pid: after["rasa"][pid]}}, elapsed,
                              turns=10)
    assert usage["rasa"]["processes"] == 1
    assert 25 <= usage["rasa"]["cpu_ms_per_turn"] <= 40  # ~0.3 s of CPU spread over 10 turns
    assert 0 < usage["rasa"]["cores"] <= 1.15  # one thread: at most a core, give or take a clock tick
    assert list(after["load_generator"]) == [str(os.getpid())]


def test_cpu_is_reported_per_turn_and_as_cores_and_empty_groups_are_left_out():
    before = {"rasa": {}, "services": {"1": 1.0}}
    after = {"rasa": {}, "services": {"1": 1.5}}
    assert process_cpu.usage(before, after, elapsed_s=2.0, turns=100) == {
        "services": {"cpu_ms_per_turn": 5.0, "cores": 0.25, "processes": 1}}
