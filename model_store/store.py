"""ModelStore: versioned, immutable, hash-checked models under `<root>/<model>/<version>/`.

Layout (local backend):
    <root>/<model>/<version>/weights.safetensors   immutable
    <root>/<model>/<version>/manifest.json         immutable; holds sha256 of the weights
    <root>/<model>/<version>/camera_thresholds.json  mutable side file: per-camera overrides
    <root>/<model>/<version>/camera_calibrations.json  mutable side file: how each stream-fitted override came about
    <root>/<model>/<version>/evaluations.json  mutable side file: latest metrics per test set
    <root>/<model>/aliases/<alias>.json            {"version": ..., "history": [...], "evidence": [...]}, os.replace'd
                                                   (evidence: what a gated promotion was shown, e.g. the
                                                   shadow report summary; absent in older files)

References: "name@version", "name@alias", or "name" (= name@production). Versions are v0001,
v0002, ...; a version's directory appears complete or not at all. Loading verifies the manifest
schema, the weights' sha256, the architecture, the state-dict keys and shapes, and runs one
forward pass; any failure is a ModelIntegrityError (ModelNotFound for an unknown reference), so a
bad model is refused at load, never half-served.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import structlog
import torch
from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from linewatch.errors import ModelIntegrityError, ModelNotFound
from model_store.backend import LocalBackend, StorageBackend
from model_store.manifest import Calibration, Manifest
from model_store.models.base import AnomalyModel
from model_store.preprocess import frames_to_tensor
from model_store.registry import create_model

log = structlog.get_logger(__name__)

DEFAULT_ALIAS = "production"
_VERSION_RE = re.compile(r"^v(\d{4,})$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _check_name(kind: str, value: str) -> str:
    if not _NAME_RE.match(value):
        raise ModelNotFound(f"invalid {kind} {value!r}")
    return value


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# Above the threshold the logistic runs at least this slowly (a fraction of the threshold itself), so
# float64 still tells scores, and per-camera thresholds, apart up to about ten times the version's
# threshold. With only the lower scale, a tight calibration set (threshold a hair above the normals'
# median) saturated to 1.0 a few per cent above the threshold, and a camera in brighter light could
# not be commissioned on this version at all.
UPPER_SCALE_FRACTION = 0.25


def upper_scale(cal: Calibration) -> float:
    return max(cal.scale, abs(cal.threshold) * UPPER_SCALE_FRACTION)


def normalise_scores(raw: np.ndarray, cal: Calibration) -> np.ndarray:
    """Raw image scores -> [0, 1], threshold at 0.5 (formula in manifest.Calibration)."""
    delta = np.asarray(raw, dtype=np.float64) - cal.threshold
    z = np.where(delta > 0, delta / upper_scale(cal), delta / cal.scale)
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


@dataclass
class LoadedModel:
    """A verified model ready to score: module in eval mode on `device`, plus its manifest."""

    name: str
    version: str
    manifest: Manifest
    module: AnomalyModel
    device: str
    camera_thresholds: dict[str, float] = field(default_factory=dict)
    camera_thresholds_stamp: str | None = None  # for ModelStore.camera_thresholds_if_changed

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def input_size(self) -> tuple[int, int]:
        return tuple(self.manifest.input_size)  # type: ignore[return-value]

    @property
    def channels(self) -> int:
        return self.manifest.channels

    @property
    def calibrated(self) -> bool:
        return self.manifest.calibration is not None

    def _cal(self) -> Calibration:
        if self.manifest.calibration is None:
            raise ModelIntegrityError(f"{self.ref} is not calibrated; run `linewatch-models calibrate`")
        return self.manifest.calibration

    def normalise(self, raw: np.ndarray) -> np.ndarray:
        """Image score -> [0, 1]; the calibrated threshold maps to 0.5."""
        return normalise_scores(raw, self._cal())

    @property
    def threshold(self) -> float:
        return self._cal().threshold

    @property
    def pixel_threshold(self) -> float:
        return self._cal().pixel_threshold

    def preprocess(self, frames: list[np.ndarray]) -> torch.Tensor:
        """BGR uint8 frames (HxWx3 or HxW gray) -> model input [B, C, H, W] float on `device`."""
        return frames_to_tensor(frames, self.input_size, self.channels, self.device)

    @torch.inference_mode()
    def score(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Model input -> (amap [B, H, W], raw image score [B]) as numpy."""
        amap, score = self.module(x)
        return amap.float().cpu().numpy(), score.float().cpu().numpy()


class ModelStore:
    def __init__(self, root: Path | str | None = None, backend: StorageBackend | None = None) -> None:
        if backend is None:
            if root is None:
                raise ValueError("ModelStore needs a root directory or a backend")
            backend = LocalBackend(root)
        self.backend = backend
        self.root = Path(root) if root is not None else None

    # ---- naming -----------------------------------------------------------------------------
    def models(self) -> list[str]:
        return [m for m in self.backend.list_children("") if _NAME_RE.match(m) and self.versions(m)]

    def versions(self, name: str) -> list[str]:
        _check_name("model name", name)
        vs = [v for v in self.backend.list_children(name) if _VERSION_RE.match(v)]
        return sorted(vs, key=lambda v: int(v[1:]))

    def aliases(self, name: str) -> dict[str, str]:
        out = {}
        for f in self.backend.list_children(f"{name}/aliases"):
            if f.endswith(".json"):
                out[f[:-5]] = self._read_alias(name, f[:-5])["version"]
        return out

    def _read_alias(self, name: str, alias: str) -> dict[str, Any]:
        try:
            data = json.loads(self.backend.read_bytes(f"{name}/aliases/{alias}.json"))
        except FileNotFoundError:
            raise ModelNotFound(f"model {name!r} has no alias {alias!r}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelIntegrityError(f"alias file {name}@{alias} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("version"), str) or not _VERSION_RE.match(data["version"]):
            raise ModelIntegrityError(f"alias file {name}@{alias} has no valid version: {str(data)[:100]}")
        history = data.get("history", [])
        if not isinstance(history, list) or not all(isinstance(v, str) and _VERSION_RE.match(v) for v in history):
            raise ModelIntegrityError(f"alias file {name}@{alias} has an invalid history")
        evidence = data.get("evidence", [])
        if not isinstance(evidence, list) or not all(isinstance(e, dict) for e in evidence):
            raise ModelIntegrityError(f"alias file {name}@{alias} has an invalid evidence list")
        return data

    def alias_history(self, ref: str) -> list[str]:
        """Versions an alias pointed at, oldest first, ending with its target ([] for a version ref)."""
        name, _, tag = ref.partition("@")
        tag = tag or DEFAULT_ALIAS
        if _VERSION_RE.match(tag):
            return []
        data = self._read_alias(_check_name("model name", name), _check_name("alias", tag))
        return [*data.get("history", []), data["version"]]

    def alias_evidence(self, name: str, alias: str = DEFAULT_ALIAS) -> list[dict[str, Any]]:
        """Evidence records of gated promotions of an alias, oldest first ([] for older alias files)."""
        return list(self._read_alias(_check_name("model name", name), _check_name("alias", alias)).get("evidence", []))

    def resolve(self, ref: str) -> tuple[str, str]:
        """'name@version' | 'name@alias' | 'name' (= production) -> (name, version)."""
        name, _, tag = ref.partition("@")
        _check_name("model name", name)
        tag = tag or DEFAULT_ALIAS
        _check_name("version or alias", tag)
        if _VERSION_RE.match(tag):
            if not self.backend.exists(f"{name}/{tag}/manifest.json"):
                raise ModelNotFound(f"no version {name}@{tag}")
            return name, tag
        version = self._read_alias(name, tag)["version"]
        if not self.backend.exists(f"{name}/{version}/manifest.json"):
            raise ModelNotFound(f"alias {name}@{tag} points at missing version {version}")
        return name, version

    # ---- writing ----------------------------------------------------------------------------
    def publish(self, name: str, module: AnomalyModel, manifest_fields: dict[str, Any]) -> Manifest:
        """Write a new immutable version; returns its manifest (version and hash filled in).

        `manifest_fields` holds every Manifest field except name, version and weights_sha256.
        """
        _check_name("model name", name)
        state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
        return self.publish_weights(name, st_save(state), manifest_fields)

    def publish_weights(self, name: str, weights: bytes, manifest_fields: dict[str, Any]) -> Manifest:
        digest = sha256_bytes(weights)
        for _ in range(100):  # a concurrent publisher may take the number we picked; take the next
            existing = self.versions(name)
            version = f"v{(int(existing[-1][1:]) + 1) if existing else 1:04d}"
            manifest = Manifest(name=name, version=version, weights_sha256=digest, **manifest_fields)
            files = {manifest.weights_file: weights, "manifest.json": manifest.model_dump_json(indent=2).encode()}
            try:
                self.backend.put_tree_exclusive(f"{name}/{version}", files)
            except FileExistsError:
                continue
            except OSError as exc:
                if self.backend.exists(f"{name}/{version}"):
                    continue
                raise
            log.info("model_published", model=name, version=version, sha256=digest[:12])
            return manifest
        raise RuntimeError(f"could not allocate a version for {name}")

    def promote(
        self, name: str, version: str, alias: str = DEFAULT_ALIAS, verify: bool = True, evidence: dict[str, Any] | None = None
    ) -> None:
        """Point `alias` at `version` atomically; the old target goes on the alias's history, and
        `evidence` (what the promotion was shown, e.g. a shadow report summary) on its evidence list.

        With `verify` (the default) the version is loaded first exactly as a worker will load it
        (hash, architecture, weights, one forward pass): an alias never points at a version no
        worker could serve. ModelIntegrityError says why not.
        """
        _check_name("alias", alias)
        if _VERSION_RE.match(alias):
            raise ModelNotFound(f"alias {alias!r} looks like a version")
        name, version = self.resolve(f"{name}@{version}")
        if verify:
            self.load(f"{name}@{version}", device="cpu")
        try:
            cur = self._read_alias(name, alias)
        except ModelNotFound:
            cur = {"version": None, "history": []}
        history = list(cur.get("history", []))
        if cur["version"] and cur["version"] != version:
            history.append(cur["version"])
        records = list(cur.get("evidence", []))
        if evidence is not None:
            records.append({**evidence, "version": version, "previous": cur["version"], "time": dt.datetime.now(dt.UTC).isoformat()})
        self._write_alias(name, alias, version, history, records)
        log.info("alias_moved", model=name, alias=alias, version=version, previous=cur["version"])

    def rollback(self, name: str, alias: str = DEFAULT_ALIAS) -> str:
        """Move `alias` back to the version it pointed at before; returns that version."""
        cur = self._read_alias(name, alias)
        history = list(cur.get("history", []))
        while history:
            prev = history.pop()
            if self.backend.exists(f"{name}/{prev}/manifest.json"):  # skip deleted versions
                self._write_alias(name, alias, prev, history, cur.get("evidence", []))
                log.info("alias_rolled_back", model=name, alias=alias, version=prev, previous=cur["version"])
                return prev
        raise ModelNotFound(f"{name}@{alias} has no earlier version to roll back to")

    def _write_alias(self, name: str, alias: str, version: str, history: list[str], evidence: list[dict[str, Any]] | None = None) -> None:
        body: dict[str, Any] = {"version": version, "history": history[-50:], "updated": dt.datetime.now(dt.UTC).isoformat()}
        if evidence:
            body["evidence"] = evidence[-50:]
        self.backend.write_atomic(f"{name}/aliases/{alias}.json", json.dumps(body, indent=2).encode())

    def delete(self, name: str, version: str, force: bool = False) -> None:
        name, version = self.resolve(f"{name}@{version}")
        users = [a for a, v in self.aliases(name).items() if v == version]
        if users and not force:
            raise ModelIntegrityError(f"{name}@{version} is the target of alias(es) {users}; move them first or force")
        self.backend.delete_tree(f"{name}/{version}")
        log.info("model_deleted", model=name, version=version)

    def set_camera_thresholds(self, ref: str, thresholds: dict[str, float]) -> None:
        """Replace the per-camera normalised threshold overrides of a version (atomic)."""
        name, version = self.resolve(ref)
        for cam, thr in thresholds.items():
            if not 0.0 < thr < 1.0:
                raise ValueError(f"camera {cam!r}: normalised threshold must be in (0, 1), got {thr}")
        data = json.dumps(dict(sorted(thresholds.items())), indent=2).encode()
        self.backend.write_atomic(f"{name}/{version}/camera_thresholds.json", data)

    def record_camera_calibrations(self, name: str, version: str, details: dict[str, dict[str, Any]]) -> None:
        """Keep how each camera's threshold was fitted (calibrate --from-stream) beside the version."""
        if not details:
            return
        merged = self.camera_calibrations(name, version) | details
        self.backend.write_atomic(f"{name}/{version}/camera_calibrations.json", json.dumps(merged, indent=2).encode())

    def camera_calibrations(self, name: str, version: str) -> dict[str, dict[str, Any]]:
        try:
            return json.loads(self.backend.read_bytes(f"{name}/{version}/camera_calibrations.json"))
        except FileNotFoundError:
            return {}

    def record_evaluation(self, name: str, version: str, metrics: dict[str, Any]) -> None:
        """Keep the latest evaluation per dataset beside the (immutable) version: evaluations.json."""
        evals = self.evaluations(name, version)
        evals[str(metrics.get("dataset", "default"))] = {k: v for k, v in metrics.items() if k != "per_defect"} | {
            "per_defect": metrics.get("per_defect", {})
        }
        self.backend.write_atomic(f"{name}/{version}/evaluations.json", json.dumps(evals, indent=2).encode())

    def evaluations(self, name: str, version: str) -> dict[str, Any]:
        try:
            return json.loads(self.backend.read_bytes(f"{name}/{version}/evaluations.json"))
        except FileNotFoundError:
            return {}

    # ---- reading ----------------------------------------------------------------------------
    def manifest(self, ref: str) -> Manifest:
        name, version = self.resolve(ref)
        try:
            raw = json.loads(self.backend.read_bytes(f"{name}/{version}/manifest.json"))
            m = Manifest.model_validate(raw)
        except FileNotFoundError:
            raise ModelNotFound(f"{name}@{version} has no manifest") from None
        except (json.JSONDecodeError, UnicodeDecodeError, ValidationError) as exc:
            raise ModelIntegrityError(f"{name}@{version}: manifest unreadable or invalid: {exc}") from exc
        if (m.name, m.version) != (name, version):
            raise ModelIntegrityError(f"{name}@{version}: manifest claims to be {m.name}@{m.version}")
        return m

    def camera_thresholds(self, name: str, version: str) -> dict[str, float]:
        try:
            data = json.loads(self.backend.read_bytes(f"{name}/{version}/camera_thresholds.json"))
        except FileNotFoundError:
            return {}
        except json.JSONDecodeError as exc:
            raise ModelIntegrityError(f"{name}@{version}: camera_thresholds.json invalid: {exc}") from exc
        return {str(k): float(v) for k, v in data.items()}

    def camera_thresholds_if_changed(
        self, name: str, version: str, seen: str | None
    ) -> tuple[str | None, dict[str, float] | None]:
        """(stamp, thresholds) when camera_thresholds.json changed since stamp `seen`, else (seen, None).

        Costs one stat() when nothing changed, so a worker can poll it every few seconds and pick
        up thresholds written by `calibrate --from-stream` or `--camera` without a restart. A
        deleted file reads as {} (no overrides).
        """
        stamp = self.backend.stamp(f"{name}/{version}/camera_thresholds.json")
        if stamp == seen:
            return seen, None
        return stamp, self.camera_thresholds(name, version)

    def load(
        self, ref: str, device: str = "cpu", require_calibration: bool = True, smoke_test: bool = True
    ) -> LoadedModel:
        """Verify and build a model. Any inconsistency -> ModelIntegrityError; nothing half-loaded."""
        name, version = self.resolve(ref)
        m = self.manifest(f"{name}@{version}")
        where = f"{name}@{version}"
        if require_calibration and m.calibration is None:
            raise ModelIntegrityError(f"{where} has no calibration; run `linewatch-models calibrate`")
        try:
            weights = self.backend.read_bytes(f"{name}/{version}/{m.weights_file}")
        except FileNotFoundError:
            raise ModelIntegrityError(f"{where}: weights file {m.weights_file} is missing") from None
        digest = sha256_bytes(weights)
        if digest != m.weights_sha256:
            raise ModelIntegrityError(f"{where}: weights sha256 {digest[:12]}... != manifest {m.weights_sha256[:12]}...")
        try:
            state = st_load(weights)
        except (SafetensorError, ValueError) as exc:
            raise ModelIntegrityError(f"{where}: weights are not valid safetensors: {exc}") from exc
        module = create_model(m.architecture, **m.kwargs)
        if module.score_definition != m.score_definition:  # a default changed since it was published
            raise ModelIntegrityError(
                f"{where}: published with score definition {m.score_definition!r}, but {m.architecture}{m.kwargs} now "
                f"computes {module.score_definition!r}; retrain, or republish with the old settings in kwargs"
            )
        module_norm = getattr(getattr(module, "norm", None), "mode", "none")
        if module_norm != m.preprocessing.input_norm:
            raise ModelIntegrityError(
                f"{where}: manifest preprocessing input_norm {m.preprocessing.input_norm!r} != model's {module_norm!r}"
            )
        if module.in_channels != m.channels:
            raise ModelIntegrityError(f"{where}: manifest channels {m.channels} != model {module.in_channels}")
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:  # missing / unexpected keys, shape mismatch
            raise ModelIntegrityError(f"{where}: weights do not fit {m.architecture}{m.kwargs}: {exc}") from exc
        try:
            module = module.to(device).eval()
        except (RuntimeError, AssertionError) as exc:
            raise ModelIntegrityError(f"{where}: cannot move to device {device!r}: {exc}") from exc
        stamp, thresholds = self.camera_thresholds_if_changed(name, version, seen="")
        loaded = LoadedModel(name, version, m, module, device, thresholds or {}, stamp)
        if smoke_test:
            self._smoke_test(loaded)
        log.info("model_loaded", model=name, version=version, arch=m.architecture, device=device)
        return loaded

    @staticmethod
    def _smoke_test(loaded: LoadedModel) -> None:
        """One forward on a blank frame: shape or numerical problems surface at load, not mid-stream."""
        h, w = loaded.input_size
        try:
            amap, score = loaded.score(torch.zeros(1, loaded.channels, h, w, device=loaded.device))
        except RuntimeError as exc:
            raise ModelIntegrityError(f"{loaded.ref}: forward pass failed at {h}x{w}: {exc}") from exc
        if amap.shape != (1, h, w) or score.shape != (1,) or not np.isfinite(score).all():
            raise ModelIntegrityError(f"{loaded.ref}: forward gave amap {amap.shape}, score {score} (want [1,{h},{w}], [1])")
