"""CPU time of the system's processes during a benchmark run, read from Linux's ``/proc`` (no extra dependency).

The chat benchmark runs on the same two cores as the system it measures, so its report says where the machine's CPU
went while it ran: the Rasa workers, the services process (actions, knowledge base, classifier), Redis and the load
generator itself, each as CPU milliseconds per turn and as cores kept busy. Elsewhere than Linux the figures are
simply absent.
"""
from __future__ import annotations

import os
from pathlib import Path

PROC = Path("/proc")

# process group → substrings of a command line that identify it (the first group that matches wins)
GROUPS: dict[str, tuple[str, ...]] = {
    "rasa": ("bot.server", "rasa run", "bin/rasa"),
    "services": ("api.main:app",),
    "redis": ("redis-server",),
}


def _ticks_per_second() -> int:
    try:
        return os.sysconf("SC_CLK_TCK")
    except (ValueError, OSError, AttributeError):
        return 100


def _cpu_seconds(pid: str) -> float | None:
    try:
        fields = (PROC / pid / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # after the command name: state is field 3, utime and stime fields 14 and 15 (1-based, see proc(5))
    return (int(fields[11]) + int(fields[12])) / _ticks_per_second()


def _group_of(pid: str) -> str | None:
    try:
        cmdline = (PROC / pid / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    for group, needles in GROUPS.items():
        if any(needle in cmdline for needle in needles):
            return group
    return None


def snapshot() -> dict[str, dict[str, float]]:
    """CPU seconds so far of every process of each group, by pid, plus this process as ``load_generator``."""
    out: dict[str, dict[str, float]] = {group: {} for group in GROUPS}
    if not PROC.is_dir():
        return {}
    own = str(os.getpid())
    for entry in PROC.iterdir():
        pid = entry.name
        if not pid.isdigit() or pid == own:
            continue
        group = _group_of(pid)
        if group is None:
            continue
        seconds = _cpu_seconds(pid)
        if seconds is not None:
            out[group][pid] = seconds
    seconds = _cpu_seconds(own)
    if seconds is not None:
        out["load_generator"] = {own: seconds}
    return out


def usage(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]], elapsed_s: float,
          turns: int) -> dict[str, dict[str, float]]:
    """Per group: CPU ms per turn, cores kept busy on average, and the number of processes seen."""
    out = {}
    for group, procs in after.items():
        spent = sum(seconds - before.get(group, {}).get(pid, 0.0) for pid, seconds in procs.items())
        if not procs:
            continue
        out[group] = {
            "cpu_ms_per_turn": round(spent * 1000 / turns, 2) if turns else None,
            "cores": round(spent / elapsed_s, 2) if elapsed_s else None,
            "processes": len(procs),
        }
    return out
