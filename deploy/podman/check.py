"""The compose stack, run end to end with podman-compose: what deploy/podman/check.sh proves.

    .venv/bin/python deploy/podman/check.py [--fps 2] [--keep]

Runs deploy/compose/docker-compose.yml (plus deploy/podman/check.yml: the producer's frame rate)
as project `lwcheck` with one worker, then checks, in order:

1. up -> the first frame scored (a model is trained by model-init inside that time);
2. the view answers and Debian's chromium shows every camera's tile with a live picture
   (screenshot: .run/containers/view-compose.png);
3. Prometheus scrapes the worker and the producer (targets up, the worker's frame counter > 0);
4. the images' health checks pass in the running containers (`podman healthcheck run`: without
   systemd nothing runs them on a timer here);
5. a worker killed with SIGKILL and started again: its restart -> the next frame scored;
6. the producer stopped: every frame offset of every partition scored (nothing lost across the
   kill), alerts in Kafka and Redis, the alert consumer logged them;
7. LW_WORKERS=2 `up` (podman-compose 1.0.3 ignores --scale; the file's deploy.replicas reads
   LW_WORKERS): two group members share the partitions, both score, every frame scored again;
8. SIGTERM: each program container stops with exit code 0 within its grace period.

Writes .run/containers/check.json and prints a Markdown summary; exit 1 when a check fails.
Kafka and Redis stay inside the stack's network (verify.py runs there, in the producer image);
the view and Prometheus are published on free loopback ports, never on 9092/6379.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
HERE = REPO / "deploy" / "podman"
STATE = REPO / ".run" / "containers"
PROJECT = "lwcheck"
COMPOSE_FILES = [REPO / "deploy" / "compose" / "docker-compose.yml", HERE / "check.yml"]
# Grafana is left out: its image cannot be pulled here (podman-compose 1.0.3 ignores profiles).
SERVICES = ["kafka", "redis", "topics", "model-init", "producer", "worker", "alerts", "view", "prometheus"]
PROGRAMS = {"producer": 30, "view": 10, "alerts": 10, "worker": 45}  # service -> stop grace (s)
CAMERAS = 4
PARTITIONS = 8


class CheckFailed(Exception):
    pass


def _alert_line(line: str) -> bool:
    """linewatch-alerts prints each alert as the contract's JSON (camera, frame_id, score, ...)."""
    try:
        record = json.loads(line)
    except ValueError:
        return False
    return isinstance(record, dict) and str(record.get("camera", "")).startswith("cam-") and "frame_id" in record


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    def __init__(self, fps: float) -> None:
        self.env = dict(os.environ, CONTAINERS_CONF=str(HERE / "containers.conf"),
                        LW_VIEW_HOST_PORT=str(free_port()), LW_PROMETHEUS_HOST_PORT=str(free_port()),
                        LW_CHECK_FPS=str(fps), LW_WORKERS="1")
        self.results: dict[str, Any] = {"checks": {}, "figures": {}}

    # -- podman ----------------------------------------------------------------------------------
    def run(self, *argv: str, check: bool = True, timeout: float = 900, **env: str) -> subprocess.CompletedProcess:
        proc = subprocess.run(list(argv), env={**self.env, **env}, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise CheckFailed(f"{' '.join(argv[:4])}... exited {proc.returncode}: {proc.stderr[-2000:]}")
        return proc

    def compose(self, *argv: str, check: bool = True, **env: str) -> subprocess.CompletedProcess:
        files = [a for f in COMPOSE_FILES for a in ("-f", str(f))]
        return self.run("podman-compose", "-p", PROJECT, *files, *argv, check=check, **env)

    def down(self, grace: int) -> None:
        # podman-compose knows the containers of LW_WORKERS replicas only: name the most we start.
        self.compose("down", "-v", "-t", str(grace), check=False, LW_WORKERS="2")
        # A container caught restarting (its restart policy) survives podman-compose's stop + rm.
        left = self.run("podman", "ps", "-aq", "--filter", f"label=io.podman.compose.project={PROJECT}").stdout.split()
        if left:
            self.run("podman", "rm", "-f", *left, check=False)
        self.run("podman", "volume", "rm", "-f", f"{PROJECT}_kafka-data", f"{PROJECT}_models", check=False)

    def container(self, service: str, n: int = 1) -> str:
        return f"{PROJECT}_{service}_{n}"

    def verify(self, *argv: str) -> dict[str, Any]:
        """verify.py inside the stack's network, in the producer image, with the stack's settings."""
        # The wait commands end by themselves (their last argument); leave them room to report.
        timeout = float(argv[-1]) + 120 if argv[0].startswith("wait") else 300
        proc = self.run("podman", "run", "--rm", "--network", f"{PROJECT}_default",
                        "--env-file", str(REPO / "deploy" / "compose" / "linewatch.env"),
                        "-v", f"{HERE / 'verify.py'}:/app/verify.py:ro", "--entrypoint", "python",
                        "linewatch-producer:dev", "/app/verify.py", *argv, check=False, timeout=timeout)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if not lines:
            raise CheckFailed(f"verify.py {argv[0]} said nothing: {proc.stderr[-2000:]}")
        state = json.loads(lines[-1])
        if proc.returncode != 0:
            raise CheckFailed(f"verify.py {' '.join(argv)} failed: {state}")
        return state

    def started_at(self, name: str) -> float:
        """When a container last started (host clock, epoch seconds)."""
        out = self.run("podman", "inspect", "--format", "{{.State.StartedAt.Unix}}.{{.State.StartedAt.Nanosecond}}", name)
        sec, ns = out.stdout.strip().split(".")
        return int(sec) + int(ns) / 1e9

    def ok(self, name: str, detail: Any) -> None:
        self.results["checks"][name] = {"ok": True, "detail": detail}
        print(f"[check] OK   {name}: {detail}", flush=True)

    # -- steps -----------------------------------------------------------------------------------
    def clean(self) -> None:
        self.down(5)  # leftovers of an earlier run; nothing when none

    def up(self) -> None:
        t0 = time.time()
        self.compose("up", "-d", *SERVICES)
        self.results["figures"]["compose_up_command_s"] = round(time.time() - t0, 1)
        # 30 minutes: at a load average of 40-60 the model alone took 13 (2026-12-07).
        first = self.verify("wait-scored", "0", "1800")
        self.results["figures"]["up_to_first_scored_s"] = round(time.time() - t0, 1)
        self.ok("up -> first frame scored", f"{time.time() - t0:.1f}s (model-init trains the model in it)")
        del first

    def view(self) -> None:
        from playwright.sync_api import expect, sync_playwright

        url = f"http://127.0.0.1:{self.env['LW_VIEW_HOST_PORT']}"
        with urllib.request.urlopen(f"{url}/healthz", timeout=10) as resp:
            if resp.status != 200:
                raise CheckFailed(f"view /healthz: {resp.status}")
        shot = STATE / "view-compose.png"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium",
                args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
            page = browser.new_page(viewport={"width": 1024, "height": 680})
            page.set_default_timeout(120_000)
            expect.set_options(timeout=120_000)
            page.goto(url)
            expect(page.locator(".tile")).to_have_count(CAMERAS)
            page.wait_for_function("() => [...document.querySelectorAll('.tile img.shot')].length > 0 && "
                                   "[...document.querySelectorAll('.tile img.shot')].every(i => i.naturalWidth > 0)")
            first = page.locator(".tile img.shot").first.get_attribute("src")
            # Live: a tile's picture changes while we watch (the worker refreshes previews).
            page.wait_for_function("src => document.querySelector('.tile img.shot').getAttribute('src') !== src", arg=first)
            page.screenshot(path=str(shot))
            browser.close()
        self.ok("view answers, chromium shows live tiles", f"{CAMERAS} tiles with pictures that change; {shot.relative_to(REPO)}")

    def prometheus(self, workers: int) -> None:
        base = f"http://127.0.0.1:{self.env['LW_PROMETHEUS_HOST_PORT']}/api/v1"
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/targets", timeout=10) as resp:
                    targets = json.load(resp)["data"]["activeTargets"]
                query = urllib.parse.quote("sum by (instance) (linewatch_worker_frames_out_total)")
                with urllib.request.urlopen(f"{base}/query?query={query}", timeout=10) as resp:
                    series = json.load(resp)["data"]["result"]
            except OSError:
                targets, series = [], []
            up = [t for t in targets if t["health"] == "up"]
            jobs = {t["labels"]["job"] for t in up}
            scoring = [s for s in series if float(s["value"][1]) > 0]
            if {"linewatch-worker", "linewatch-producer"} <= jobs and len(scoring) >= workers \
                    and sum(t["labels"]["job"] == "linewatch-worker" for t in up) >= workers:
                break
            if time.time() > deadline:
                raise CheckFailed(f"Prometheus: targets {[(t['scrapeUrl'], t['health']) for t in targets]}, "
                                  f"frames_out by instance {series}")
            time.sleep(3)
        self.ok(f"Prometheus scrapes {workers} worker(s) and the producer",
                {s["metric"]["instance"]: float(s["value"][1]) for s in scoring})

    def healthchecks(self) -> None:
        status = {}
        for service in ("kafka", "redis", "producer", "worker", "view"):
            proc = self.run("podman", "healthcheck", "run", self.container(service), check=False)
            status[service] = proc.stdout.strip() or proc.stderr.strip()
            if proc.returncode != 0:
                raise CheckFailed(f"health check of {service}: {status[service]}")
        self.ok("image health checks pass", status)

    def kill_restart(self) -> None:
        name = self.container("worker")
        self.run("podman", "kill", "--signal", "KILL", name)
        time.sleep(3)  # frames pile up meanwhile; a killed process writes nothing more
        before = self.verify("state")["scored"]
        if self.run("podman", "inspect", "--format", "{{.State.Running}}", name).stdout.strip() != "true":
            self.run("podman", "start", name)
        started = self.started_at(name)
        self.verify("wait-scored", str(before), "600")
        took = time.time() - started
        self.results["figures"]["worker_restart_to_first_scored_s"] = round(took, 1)
        self.ok("worker killed (SIGKILL) and started again scores", f"{took:.1f}s from its start to the next frame scored")

    def drained(self, label: str) -> dict[str, Any]:
        self.run("podman", "stop", "-t", str(PROGRAMS["producer"]), self.container("producer"))
        state = self.verify("wait-drained", "900")
        self.ok(f"every frame scored ({label})", f"{state['frames']} frames, all offsets of all partitions "
                f"in Redis, lag 0 (waited {state['waited_s']}s after the producer stopped)")
        return state

    def alerts(self, state: dict[str, Any]) -> None:
        printed = self.run("podman", "logs", self.container("alerts"))  # the container's stdout and stderr
        logs = printed.stdout + printed.stderr
        logged = sum(1 for line in logs.splitlines() if _alert_line(line))
        if state["alerts_kafka"] < 1 or state["alerts_redis"] < 1 or logged < 1:
            raise CheckFailed(f"alerts: kafka {state['alerts_kafka']}, redis {state['alerts_redis']}, "
                              f"alert consumer log lines {logged}")
        self.ok("alerts arrive", f"{state['alerts_kafka']} on the alerts topic, {state['alerts_redis']} in Redis, "
                f"{logged} logged by linewatch-alerts")

    def scale(self) -> None:
        self.compose("up", "-d", "worker", LW_WORKERS="2")
        self.run("podman", "start", self.container("producer"))
        deadline = time.time() + 300
        while True:
            members = self.verify("state")["members"]
            parts = [set(m["partitions"]) for m in members]
            if len(members) == 2 and all(parts) and not (parts[0] & parts[1]) \
                    and parts[0] | parts[1] == set(range(PARTITIONS)):
                break
            if time.time() > deadline:
                raise CheckFailed(f"the group did not settle on two members sharing {PARTITIONS} partitions: {members}")
            time.sleep(3)
        self.ok("LW_WORKERS=2: two workers share the partitions", [sorted(p) for p in parts])
        self.prometheus(workers=2)

    def stop_cleanly(self) -> None:
        stops = {}
        for service, grace in PROGRAMS.items():
            names = [self.container(service, n) for n in (1, 2) if service == "worker" or n == 1]
            for name in names:
                running = self.run("podman", "inspect", "--format", "{{.State.Running}}", name).stdout.strip()
                if running != "true":
                    self.run("podman", "start", name)
                    time.sleep(5)
                t0 = time.time()
                self.run("podman", "stop", "-t", str(grace), name)
                took = time.time() - t0
                code = int(self.run("podman", "inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip())
                stops[name] = {"stop_s": round(took, 1), "exit_code": code, "grace_s": grace}
                if code != 0 or took >= grace:
                    raise CheckFailed(f"{name} did not stop cleanly on SIGTERM: {stops[name]}")
        self.results["figures"]["sigterm_stop_s"] = {k: v["stop_s"] for k, v in stops.items()}
        self.ok("SIGTERM: every program exits 0 within its grace period", {k: v["stop_s"] for k, v in stops.items()})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fps", type=float, default=2.0, help="frames per second per camera (default 2)")
    parser.add_argument("--keep", action="store_true", help="leave the stack running afterwards")
    args = parser.parse_args()
    STATE.mkdir(parents=True, exist_ok=True)
    stack = Stack(args.fps)
    started = time.time()
    failed = None
    try:
        stack.clean()
        stack.up()
        stack.view()
        stack.prometheus(workers=1)
        stack.healthchecks()
        stack.kill_restart()
        state = stack.drained("after a worker was killed")
        stack.alerts(state)
        stack.scale()
        stack.drained("two workers")
        stack.stop_cleanly()
    except (CheckFailed, subprocess.TimeoutExpired, AssertionError) as exc:
        failed = str(exc)
        print(f"[check] FAIL {exc}", flush=True)
        for service in ("worker", "producer", "model-init", "topics", "kafka"):
            logs = stack.run("podman", "logs", "--tail", "15", stack.container(service), check=False)
            print(f"--- {service} (last lines)\n{logs.stdout}{logs.stderr}", flush=True)
    finally:
        if not args.keep:
            stack.down(45)
    stack.results.update(ok=failed is None, failure=failed, total_s=round(time.time() - started, 1),
                         date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), fps_per_camera=args.fps)
    (STATE / "check.json").write_text(json.dumps(stack.results, indent=2))
    print("\n| check | result |\n|---|---|")
    for name, res in stack.results["checks"].items():
        print(f"| {name} | OK: {res['detail']} |")
    if failed:
        print(f"| (stopped at) | FAIL: {failed[:300]} |")
    print(f"\nfigures: {json.dumps(stack.results['figures'])}")
    build = STATE / "build.json"
    if build.exists():
        images = json.loads(build.read_text())
        print("\n| image | size | build (s), last `make images` |\n|---|---|---|")
        for tag, info in images.get("images", {}).items():
            print(f"| {tag} | {info['size_bytes'] / 1e9:.2f} GB | {info['build_s']} |")
        print(f"| all | | {images.get('total_s')} |")
    return 0 if failed is None else 1


if __name__ == "__main__":
    sys.exit(main())
