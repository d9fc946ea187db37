"""The compose stack run end to end with podman-compose, and what every stack's check shares.

`Stack` runs deploy/compose/docker-compose.yml (plus deploy/podman/check.yml: the producer's frame
rate and cameras) as project `lwcheck` with one worker; its `steps` check, in order:

1. up -> the first frame scored (a model is trained by model-init inside that time);
2. the view answers and Debian's chromium shows every camera's tile with a live picture
   (screenshot: .run/containers/view-<stack>.png);
3. Prometheus scrapes the worker and the producer (targets up, the worker's frame counter > 0);
4. the images' health checks pass in the running containers (`podman healthcheck run`: without
   systemd nothing runs them on a timer here);
5. a worker killed with SIGKILL and started again: its restart -> the next frame scored;
6. the producer stopped: every frame offset of every partition scored (nothing lost across the
   kill), alerts in Kafka and Redis, the alert consumer logged them;
7. LW_WORKERS=2 `up` (podman-compose 1.0.3 ignores --scale; the file's deploy.replicas reads
   LW_WORKERS): two group members share the partitions, both score, every frame scored again;
8. SIGTERM: each program container stops with exit code 0 within its grace period.

`SecureStack` runs the same with docker-compose.secure.yml on top (SASL_SSL, TLS Redis); kube.py
runs the Kubernetes manifests. check.py runs them and prints the summary. Kafka and Redis stay
inside the stack's network (verify.py runs there, in the producer image); the view and Prometheus
are published on free loopback ports, never on 9092/6379.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[2]
HERE = REPO / "deploy" / "podman"
COMPOSE_DIR = REPO / "deploy" / "compose"
STATE = REPO / ".run" / "containers"
PROJECT = "lwcheck"
COMPOSE_FILES = [COMPOSE_DIR / "docker-compose.yml", HERE / "check.yml"]
# The model store the compose check's model-init trained: later stacks start from it (and say so).
MODELS_TAR = STATE / "models.tar"
# Grafana is left out: its image cannot be pulled here (podman-compose 1.0.3 ignores profiles).
SERVICES = ["kafka", "redis", "topics", "model-init", "producer", "worker", "alerts", "view", "prometheus"]
PROGRAMS = {"producer": 30, "view": 10, "alerts": 10, "worker": 45}  # service -> stop grace (s)
CAMERAS = 4
PARTITIONS = 8
# Frames sent before the producer is stopped: cam-1 has passed its damaged part (frames 40-70,
# check.yml and the kube overlay), so an alert is due. A stack that starts from a copied model is
# scoring within a minute, too soon for that.
MIN_FRAMES = CAMERAS * 80


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
    name = "compose"
    project = PROJECT
    compose_files = COMPOSE_FILES
    programs = PROGRAMS
    # verify.py's settings: how the stack's programs reach Kafka and Redis inside its network.
    verify_env = [COMPOSE_DIR / "linewatch.env"]
    verify_args: list[str] = []
    log_services = ("worker", "producer", "model-init", "topics", "kafka")

    @property
    def network(self) -> str:
        return f"{self.project}_default"

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
        files = [a for f in self.compose_files for a in ("-f", str(f))]
        return self.run("podman-compose", "-p", self.project, *files, *argv, check=check, **env)

    def down(self, grace: int) -> None:
        # podman-compose knows the containers of LW_WORKERS replicas only: name the most we start.
        self.compose("down", "-v", "-t", str(grace), check=False, LW_WORKERS="2")
        # A container caught restarting (its restart policy) survives podman-compose's stop + rm.
        left = self.run("podman", "ps", "-aq", "--filter", f"label=io.podman.compose.project={self.project}").stdout.split()
        if left:
            self.run("podman", "rm", "-f", *left, check=False)
        self.run("podman", "volume", "rm", "-f", f"{self.project}_kafka-data", f"{self.project}_models", check=False)

    def container(self, service: str, n: int = 1) -> str:
        return f"{self.project}_{service}_{n}"

    def verify(self, *argv: str) -> dict[str, Any]:
        """verify.py inside the stack's network, in the producer image, with the stack's settings."""
        # The wait commands end by themselves (their last argument); leave them room to report.
        timeout = float(argv[-1]) + 120 if argv[0].startswith("wait") else 300
        env_files = [a for f in self.verify_env for a in ("--env-file", str(f))]
        proc = self.run("podman", "run", "--rm", "--network", self.network, *env_files, *self.verify_args,
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

    def running(self, name: str) -> bool:
        return self.run("podman", "inspect", "--format", "{{.State.Running}}", name).stdout.strip() == "true"

    def ok(self, name: str, detail: Any) -> None:
        self.results["checks"][name] = {"ok": True, "detail": detail}
        print(f"[check] OK   {name}: {detail}", flush=True)

    # -- steps -----------------------------------------------------------------------------------
    def steps(self) -> list[Callable[[], Any]]:
        return [self.clean, self.up, self.view, lambda: self.prometheus(workers=1), self.healthchecks,
                self.kill_restart, lambda: self.alerts(self.drained("after a worker was killed")),
                self.scale, lambda: self.drained("two workers"), self.stop_cleanly]

    def clean(self) -> None:
        self.down(5)  # leftovers of an earlier run; nothing when none

    def up(self) -> None:
        t0 = time.time()
        self.compose("up", "-d", *SERVICES)
        self.results["figures"]["compose_up_command_s"] = round(time.time() - t0, 1)
        # 30 minutes: at a load average of 40-60 the model alone took 13 (2026-12-07).
        self.verify("wait-scored", "0", "1800")
        self.results["figures"]["up_to_first_scored_s"] = round(time.time() - t0, 1)
        self.ok("up -> first frame scored", f"{time.time() - t0:.1f}s ({self.model_origin})")
        if not self.seeded:
            MODELS_TAR.unlink(missing_ok=True)
            self.run("podman", "volume", "export", "-o", str(MODELS_TAR), f"{self.project}_models")

    seeded = False

    @property
    def model_origin(self) -> str:
        return "the model trained by the compose check, copied in" if self.seeded else "model-init trains the model in it"

    def seed_models(self, volume: str, create: bool = True) -> None:
        """Start from the model store the compose check trained, when there is one (minutes saved).
        `create=False`: the volume exists already (kube play made it for its claim)."""
        if MODELS_TAR.exists():
            if create:
                self.run("podman", "volume", "create", volume)
            self.run("podman", "volume", "import", volume, str(MODELS_TAR))
            self.seeded = True
        self.results["figures"]["model_seeded"] = self.seeded

    def view_url(self) -> str:
        return f"http://127.0.0.1:{self.env['LW_VIEW_HOST_PORT']}"

    def view(self) -> None:
        from playwright.sync_api import expect, sync_playwright

        url = self.view_url()
        with urllib.request.urlopen(f"{url}/healthz", timeout=10) as resp:
            if resp.status != 200:
                raise CheckFailed(f"view /healthz: {resp.status}")
        shot = STATE / f"view-{self.name}.png"
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
        killed_start = self.started_at(name)
        # SIGKILL to the process itself, as the kernel's OOM killer would: `podman kill` marks the
        # container stopped by the user, and no restart policy restarts those.
        pid = int(self.run("podman", "inspect", "--format", "{{.State.Pid}}", name).stdout.strip())
        os.kill(pid, signal.SIGKILL)
        time.sleep(3)  # frames pile up meanwhile; a killed process writes nothing more
        before = self.verify("state")["scored"]
        # Its restart policy brings it back (podman's cleanup process, no systemd needed); if not
        # within 30 s, start it as an operator would.
        restarted_by = "its restart policy"
        deadline = time.time() + 30
        while self.started_at(name) == killed_start or not self.running(name):
            if time.time() > deadline:
                self.run("podman", "start", name)
                restarted_by = "podman start"
                break
            time.sleep(1)
        started = self.started_at(name)
        self.await_scored_after_restart(before)
        took = time.time() - started
        self.results["figures"]["worker_restart_to_first_scored_s"] = round(took, 1)
        self.ok("worker killed (SIGKILL) and started again scores",
                f"restarted by {restarted_by}; {took:.1f}s from its start to the next frame scored")

    def await_scored_after_restart(self, scored_before: int) -> None:
        """One worker: the next frame the stack scores is the restarted worker's."""
        self.verify("wait-scored", str(scored_before), "600")

    def drained(self, label: str) -> dict[str, Any]:
        deadline = time.time() + 600
        while (frames := self.verify("state")["frames"]) < MIN_FRAMES:
            if time.time() > deadline:
                raise CheckFailed(f"the producer sent {frames} frames in 10 minutes, fewer than {MIN_FRAMES}")
            time.sleep(10)
        self.run("podman", "stop", "-t", str(self.programs["producer"]), self.container("producer"))
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
        parts = self.await_split()
        self.ok("LW_WORKERS=2: two workers share the partitions", [sorted(p) for p in parts])
        self.prometheus(workers=2)

    def await_split(self, also: Callable[[], bool] = lambda: True) -> list[set[int]]:
        """Wait (5 minutes at most) until two group members hold all partitions between them, none
        twice, and `also` holds; their partitions."""
        deadline = time.time() + 300
        while True:
            members = self.verify("state")["members"]
            parts = [set(m["partitions"]) for m in members]
            if len(members) == 2 and all(parts) and not (parts[0] & parts[1]) \
                    and parts[0] | parts[1] == set(range(PARTITIONS)) and also():
                return parts
            if time.time() > deadline:
                raise CheckFailed(f"the group did not settle on two members sharing {PARTITIONS} partitions "
                                  f"(and {also.__doc__ or 'the rest'}): {members}")
            time.sleep(3)

    def stop_cleanly(self) -> None:
        stops = {}
        for service, grace in self.programs.items():
            names = [self.container(service, n) for n in (1, 2) if service == "worker" or n == 1]
            for name in names:
                if not self.running(name):
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


class SecureStack(Stack):
    """The same checks over SASL_SSL (SCRAM-SHA-512, a user per program) and TLS Redis: the compose
    stack with docker-compose.secure.yml on top, secrets from deploy/compose/secrets.sh."""

    name = "secure"
    project = "lwsecure"
    compose_files = [COMPOSE_DIR / "docker-compose.yml", COMPOSE_DIR / "docker-compose.secure.yml", HERE / "check.yml"]
    verify_env = [COMPOSE_DIR / "linewatch.env", COMPOSE_DIR / "secure" / "common.env"]
    log_services = ("worker", "producer", "security-setup", "topics", "kafka")

    def __init__(self, fps: float) -> None:
        super().__init__(fps)
        secure = COMPOSE_DIR / ".run" / "secure"
        # verify.py reads offsets, groups and every key: as the admin of Kafka and of Redis.
        self.verify_args = [
            "-v", f"{secure / 'ca.pem'}:/run/secrets/ca:ro",
            "-v", f"{secure / 'passwords' / 'kafka-admin'}:/run/secrets/kafka-admin-password:ro",
            "-v", f"{secure / 'passwords' / 'redis-admin'}:/run/secrets/redis-admin-password:ro",
            "-e", "LW_KAFKA_SASL_USERNAME=lw-admin", "-e", "LW_KAFKA_SASL_PASSWORD_FILE=/run/secrets/kafka-admin-password",
            "-e", "LW_REDIS_USERNAME=lw-admin", "-e", "LW_REDIS_PASSWORD_FILE=/run/secrets/redis-admin-password",
        ]

    def up(self) -> None:
        self.run("bash", str(COMPOSE_DIR / "secrets.sh"))
        self.seed_models(f"{self.project}_models")
        super().up()
        self.ok("Kafka and Redis give a plaintext client nothing", self.verify("plaintext-refused"))
