"""The Kubernetes manifests run with `podman kube play`: the base of deploy/k8s through the overlay
deploy/podman/kube (Kafka and Redis pods, two CPU workers, local images; its kustomization says what
podman 4.3 does not run and what stands in), rendered by kustomize 5 (scripts/kustomize.sh).

Checks, in order: play -> the first frame scored; the view (reached at its pod's address on the
bridge network; nothing is published) shows live tiles in chromium; two workers share the
partitions and both score (each worker's own /metrics: no Prometheus in these manifests); a worker
killed with SIGKILL is restarted by its pod's restart policy and scores again; the producer stopped:
every frame scored, alerts in Kafka, Redis and the alert consumer's log; SIGTERM stops every
program with exit code 0 within its pod's terminationGracePeriodSeconds.
"""

from __future__ import annotations

import time
import urllib.request
from typing import Any, Callable

import yaml
from stacks import MODELS_TAR, REPO, STATE, CheckFailed, Stack

# Pod of each service: Deployments' pods are <name>-pod-<i> under podman, containers <pod>-<container>.
PODS = {"worker": "linewatch-worker-pod-{i}", "producer": "linewatch-producer-pod-0", "view": "linewatch-view-pod-0",
        "alerts": "linewatch-alerts-pod-0", "model-init": "linewatch-model-init", "topics": "linewatch-topics",
        "kafka": "kafka", "redis": "redis"}


class KubeStack(Stack):
    name = "kube"
    network = "lwkube"
    # terminationGracePeriodSeconds of each Deployment (alerts: Kubernetes' default).
    programs = {"producer": 45, "view": 10, "alerts": 30, "worker": 60}

    def __init__(self, fps: float) -> None:
        super().__init__(fps)
        self.manifest = STATE / "kube.yaml"
        self.results["figures"]["fps_per_camera"] = "2 (the overlay's LW_TARGET_FPS)"

    def container(self, service: str, n: int = 1) -> str:
        return f"{PODS[service].format(i=n - 1)}-{service}"

    def render(self) -> None:
        out = self.run("bash", str(REPO / "scripts" / "kustomize.sh"), "build", str(REPO / "deploy" / "podman" / "kube"))
        self.manifest.write_text(out.stdout)

    def pod_ip(self, service: str, n: int = 1) -> str:
        infra = self.run("podman", "pod", "inspect", "--format", "{{.InfraContainerID}}", PODS[service].format(i=n - 1))
        fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
        return self.run("podman", "inspect", "--format", fmt, infra.stdout.strip()).stdout.strip()

    def down(self, grace: int) -> None:
        if self.manifest.exists():
            self.run("podman", "kube", "down", str(self.manifest), check=False)
        pods = [p.format(i=i) for p in PODS.values() for i in (0, 1)]
        self.run("podman", "pod", "rm", "-f", "-t", str(grace), *sorted(set(pods)), check=False)
        self.run("podman", "volume", "rm", "-f", "linewatch-models", check=False)
        self.run("podman", "network", "rm", "-f", self.network, check=False)

    # -- steps -----------------------------------------------------------------------------------
    def steps(self) -> list[Callable[[], Any]]:
        return [self.clean, self.up, self.view, self.workers, self.kill_restart,
                lambda: self.alerts(self.drained("two workers, one killed")), self.stop_cleanly]

    def play(self, docs: list[dict[str, Any]], name: str) -> None:
        path = STATE / name
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        self.run("podman", "kube", "play", "--network", self.network, str(path), timeout=600)

    def up(self) -> None:
        self.render()
        docs = [d for d in yaml.safe_load_all(self.manifest.read_text()) if d]
        self.run("podman", "network", "create", self.network)
        t0 = time.time()
        if MODELS_TAR.exists():
            # The claim first, filled with the compose check's model store, then the rest: kube play
            # refuses a claim whose volume already exists.
            self.play([d for d in docs if d["kind"] == "PersistentVolumeClaim"], "kube-claims.yaml")
            docs = [d for d in docs if d["kind"] != "PersistentVolumeClaim"]
        self.seed_models("linewatch-models", create=False)
        self.play(docs, "kube-rest.yaml")
        self.results["figures"]["kube_play_command_s"] = round(time.time() - t0, 1)
        self.verify("wait-scored", "0", "1800")
        self.results["figures"]["up_to_first_scored_s"] = round(time.time() - t0, 1)
        self.ok("kube play -> first frame scored", f"{time.time() - t0:.1f}s ({self.model_origin})")

    def view_url(self) -> str:
        return f"http://{self.pod_ip('view')}:8090"

    def frames_out(self, n: int) -> float:
        """The worker's own frame counter, read from its /metrics at its pod's address."""
        with urllib.request.urlopen(f"http://{self.pod_ip('worker', n)}:8080/metrics", timeout=10) as resp:
            text = resp.read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("linewatch_worker_frames_out_total"))

    def await_scored_after_restart(self, scored_before: int) -> None:
        """Two workers: the other one scores on meanwhile, so wait for the restarted one's own counter."""
        deadline = time.time() + 600
        while True:
            try:
                if self.frames_out(1) > 0:
                    return
            except OSError:  # not listening yet
                pass
            if time.time() > deadline:
                raise CheckFailed("the restarted worker scored nothing within 600 s")
            time.sleep(0.5)

    def workers(self) -> None:
        counts: list[float] = []

        def both_score() -> bool:
            """both workers' own frame counters above 0"""
            counts[:] = [self.frames_out(n) for n in (1, 2)]
            return all(counts)

        parts = self.await_split(both_score)
        self.ok("two worker pods share the partitions and both score",
                {"partitions": [sorted(p) for p in parts], "frames_out": counts})
