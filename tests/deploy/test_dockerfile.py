"""The Dockerfile, read (this machine has no Docker): targets, entry points, health check, user."""

from __future__ import annotations

import fnmatch

from producer.settings import ProducerSettings
from view.settings import ViewSettings
from worker.settings import WorkerSettings

from .conftest import ROOT, console_scripts, dockerfile_instructions, exec_form


def _stages() -> dict[str, list[tuple[str, str]]]:
    stages: dict[str, list[tuple[str, str]]] = {}
    current = None
    for instr, args in dockerfile_instructions():
        if instr == "FROM":
            words = args.split()
            current = words[-1] if len(words) >= 3 and words[-2].upper() == "AS" else f"stage{len(stages)}"
            stages[current] = [(instr, args)]
        elif current is not None:
            stages[current].append((instr, args))
    return stages


def _last(stage: list[tuple[str, str]], instr: str) -> str | None:
    values = [a for i, a in stage if i == instr]
    return values[-1] if values else None


def _resolved(stages: dict[str, list[tuple[str, str]]], name: str, instr: str) -> str | None:
    """An instruction's value in a stage, following `FROM <stage>` to its parent when unset."""
    value = _last(stages[name], instr)
    parent = stages[name][0][1].split()[0]
    if value is None and parent in stages:
        return _resolved(stages, parent, instr)
    return value


def test_targets_and_entry_points() -> None:
    stages = _stages()
    scripts = console_scripts()
    expected = {"worker": "linewatch-worker", "cpu-worker": "linewatch-worker", "producer": "linewatch-producer"}
    for target, program in expected.items():
        entry = exec_form(_resolved(stages, target, "ENTRYPOINT") or "[]")
        assert entry == [program] and program in scripts, target


def test_final_stages_run_as_non_root() -> None:
    stages = _stages()
    for target in ("worker", "cpu-worker", "producer"):
        user = _resolved(stages, target, "USER")
        assert user is not None and user not in {"root", "0"}, target


def test_final_stages_carry_no_build_tools() -> None:
    stages = _stages()
    for target in ("worker", "cpu-runtime"):
        text = " ".join(a for i, a in stages[target] if i == "RUN")
        for tool in ("build-essential", "gcc", "g++", "python3.11-venv", "pip install"):
            assert tool not in text, f"{target} installs {tool}"
        assert "rm -rf /var/lib/apt/lists" in text or "apt-get" not in text


def test_healthchecks_hit_readiness_on_the_default_ports() -> None:
    """Healthy means ready: /readyz of the worker and producer, the view's /healthz (Redis answers)."""
    stages = _stages()
    expected = {
        "worker": ("/readyz", "LW_HTTP_PORT", WorkerSettings.model_fields["http_port"].default),
        "cpu-worker": ("/readyz", "LW_HTTP_PORT", WorkerSettings.model_fields["http_port"].default),
        "producer": ("/readyz", "LW_METRICS_PORT", ProducerSettings.model_fields["metrics_port"].default),
        "view": ("/healthz", "LW_VIEW_PORT", ViewSettings.model_fields["view_port"].default),
    }
    for target, (path, variable, port) in expected.items():
        check = _resolved(stages, target, "HEALTHCHECK")
        assert check is not None, target
        command = exec_form(check.split("CMD", 1)[1])
        assert command[:2] == ["python", "-c"]  # no curl in the image
        assert path in command[2] and f"'{variable}', '{port}'" in command[2], target
        compile(command[2], "<healthcheck>", "exec")


def test_copied_sources_are_in_the_build_context() -> None:
    """The .dockerignore allow-list lets in every path a COPY names (and keeps .venv, models out)."""
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip() and not p.startswith("#")]

    def included(path: str) -> bool:
        keep = True
        for pattern in patterns:
            negate = pattern.startswith("!")
            pat = pattern.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, pat) or path.startswith(pat + "/"):
                keep = negate
        return keep

    copied = set()
    for instr, args in dockerfile_instructions():
        if instr == "COPY" and "--from" not in args:
            copied.update(args.split()[:-1])
    assert copied
    for path in copied:
        assert (ROOT / path).exists() and included(path), path
    for path in (".venv", "models", ".git", "runs"):
        assert not included(path), path
