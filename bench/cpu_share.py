"""Who uses the CPU: cores used by the worker processes, the Kafka broker, Redis and the bench itself.

    .venv/bin/python bench/cpu_share.py 12      # beside a bench_pipeline latency phase

Samples /proc (Linux) over the given seconds and prints, per second, the machine's idle and steal
shares and the cores each group of processes used, then the averages. On two shared cores a tail
in latency often means one of these took the CPU the worker needed; steal means the VM's
neighbours did.
"""

from __future__ import annotations

import argparse
import os
import time

GROUPS = {"worker": "worker.app", "broker": "kafka.Kafka", "redis": "redis-server", "bench": "bench_pipeline"}
TICKS = os.sysconf("SC_CLK_TCK")


def _pids(pattern: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if pattern.encode() in f.read():
                    found.append(pid)
        except OSError:
            continue
    return found


def _cpu_seconds(pids: list[str]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except OSError:
            continue  # the process ended during the second
    return total / TICKS


def _machine() -> list[int]:
    with open("/proc/stat") as f:
        return [int(v) for v in f.readline().split()[1:]]


def sample(seconds: int) -> list[dict[str, float]]:
    rows = []
    for _ in range(seconds):
        pids = {name: _pids(pattern) for name, pattern in GROUPS.items()}
        before, machine_before, started = {n: _cpu_seconds(p) for n, p in pids.items()}, _machine(), time.monotonic()
        time.sleep(1.0)
        elapsed = time.monotonic() - started
        delta = [b - a for a, b in zip(machine_before, _machine())]
        total = sum(delta) or 1
        row = {"idle": delta[3] / total, "steal": delta[7] / total if len(delta) > 7 else 0.0}
        row.update({n: max(0.0, _cpu_seconds(p) - before[n]) / elapsed for n, p in pids.items()})
        rows.append(row)
        print(f"idle {row['idle']:4.0%}  steal {row['steal']:4.0%}  " + "  ".join(f"{n} {row[n]:.2f}" for n in GROUPS),
              flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seconds", type=int, nargs="?", default=12)
    rows = sample(parser.parse_args().seconds)
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
    print(f"mean: idle {mean['idle']:.0%}, steal {mean['steal']:.0%}; cores: "
          + ", ".join(f"{n} {mean[n]:.2f}" for n in GROUPS))


if __name__ == "__main__":
    main()
