"""The container check: every stack run end to end with podman, and a summary (make containers-check).

    .venv/bin/python deploy/podman/check.py [--stacks compose,kube,secure] [--fps 2] [--keep]

compose  deploy/compose/docker-compose.yml with podman-compose (stacks.Stack)
kube     the Kubernetes manifests (deploy/k8s through the overlay deploy/podman/kube) with
         `podman kube play` (kube.KubeStack)
secure   the compose stack with docker-compose.secure.yml on top: SASL_SSL and TLS Redis
         (stacks.SecureStack)

Each stack runs alone (they would share two cores) and is taken down afterwards unless --keep.
Writes .run/containers/check-<stack>.json and prints one Markdown table per stack, the figures
and the image sizes of the last build; exit 1 when any check fails.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

from kube import KubeStack
from stacks import STATE, CheckFailed, SecureStack, Stack

STACKS = {"compose": Stack, "kube": KubeStack, "secure": SecureStack}


def execute(stack: Stack, keep: bool) -> bool:
    """Run the stack's steps in order; stop at the first failure and show its programs' last lines."""
    started = time.time()
    failed = None
    print(f"\n[check] == {stack.name} ==", flush=True)
    try:
        for step in stack.steps():
            step()
    except (CheckFailed, subprocess.TimeoutExpired, AssertionError) as exc:
        failed = str(exc)
        print(f"[check] FAIL {exc}", flush=True)
        for service in stack.log_services:
            logs = stack.run("podman", "logs", "--tail", "15", stack.container(service), check=False)
            print(f"--- {service} (last lines)\n{logs.stdout}{logs.stderr}", flush=True)
    finally:
        if not keep:
            stack.down(45)
    stack.results.update(ok=failed is None, failure=failed, total_s=round(time.time() - started, 1),
                         date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    (STATE / f"check-{stack.name}.json").write_text(json.dumps(stack.results, indent=2))
    return failed is None


def summary(stack: Stack) -> None:
    print(f"\n### {stack.name}\n\n| check | result |\n|---|---|")
    for name, res in stack.results["checks"].items():
        print(f"| {name} | OK: {res['detail']} |")
    if stack.results.get("failure"):
        print(f"| (stopped at) | FAIL: {stack.results['failure'][:300]} |")
    print(f"\nfigures: {json.dumps(stack.results['figures'])}; total {stack.results['total_s']} s")


def build_summary() -> None:
    build = STATE / "build.json"
    if build.exists():
        images = json.loads(build.read_text())
        print("\n| image | size | build (s), last `make images` |\n|---|---|---|")
        for tag, info in images.get("images", {}).items():
            print(f"| {tag} | {info['size_bytes'] / 1e9:.2f} GB | {info['build_s']} |")
        print(f"| all | | {images.get('total_s')} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacks", default=",".join(STACKS), help=f"which, comma-separated (default {','.join(STACKS)})")
    parser.add_argument("--fps", type=float, default=2.0, help="frames per second per camera (default 2)")
    parser.add_argument("--keep", action="store_true", help="leave the stack running afterwards")
    args = parser.parse_args()
    names = [n.strip() for n in args.stacks.split(",") if n.strip()]
    unknown = set(names) - set(STACKS)
    if unknown:
        parser.error(f"unknown stacks {sorted(unknown)}; known: {', '.join(STACKS)}")
    STATE.mkdir(parents=True, exist_ok=True)
    stacks = [STACKS[n](args.fps) for n in names]
    passed = [execute(stack, args.keep) for stack in stacks]
    for stack in stacks:
        summary(stack)
    build_summary()
    return 0 if all(passed) else 1


if __name__ == "__main__":
    sys.exit(main())
