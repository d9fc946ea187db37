"""Registry, store and loading: every registered model round-trips; every corruption is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from linewatch.errors import ModelIntegrityError, ModelNotFound
from model_store.backend import LocalBackend
from model_store.manifest import Calibration
from model_store.registry import create_model, list_models, register_model
from model_store.store import ModelStore, normalise_scores

from model_store_helpers import publish, rand_input

# The paper-size variants are big; shrink their widths so the generic checks stay fast.
SMALL_KWARGS = {"draem": {"base_width": 8, "disc_width": 8}}


@pytest.fixture
def store(tmp_path: Path) -> ModelStore:
    return ModelStore(tmp_path / "store")


@pytest.fixture
def ae_store(store: ModelStore) -> ModelStore:
    torch.manual_seed(0)
    publish(store, "ae", "autoencoder", create_model("autoencoder", width=8, latent=16), kwargs={"width": 8, "latent": 16})
    return store


def test_builtin_models_registered() -> None:
    assert {"draem", "draem_small", "autoencoder"} <= set(list_models())


def test_unknown_architecture_is_integrity_error() -> None:
    with pytest.raises(ModelIntegrityError, match="unknown architecture"):
        create_model("no_such_model")


def test_bad_kwargs_are_integrity_error() -> None:
    with pytest.raises(ModelIntegrityError):
        create_model("autoencoder", no_such_kwarg=3)


def test_duplicate_registration_rejected() -> None:
    def autoencoder(**kw):  # same name as the real one, different function
        raise AssertionError

    with pytest.raises(ValueError, match="registered twice"):
        register_model(autoencoder)


@pytest.mark.parametrize("arch", list_models())
def test_every_model_builds_from_manifest_and_round_trips(store: ModelStore, arch: str) -> None:
    kwargs = SMALL_KWARGS.get(arch, {})
    torch.manual_seed(0)
    model = create_model(arch, **kwargs).eval()
    x = rand_input(model)
    with torch.inference_mode():
        amap, score = model(x)
    assert amap.shape == (2, 64, 64) and score.shape == (2,)
    assert torch.isfinite(amap).all() and torch.isfinite(score).all()

    m = publish(store, arch.replace("_", "-"), arch, model, kwargs=kwargs)
    loaded = store.load(f"{m.name}@{m.version}", require_calibration=False)
    assert loaded.manifest.architecture == arch and loaded.input_size == (64, 64)
    assert not loaded.module.training
    with torch.inference_mode():
        amap2, score2 = loaded.module(x)
    torch.testing.assert_close(amap2, amap)
    torch.testing.assert_close(score2, score)


def _version_dir(store: ModelStore, ref: str) -> Path:
    name, version = store.resolve(ref)
    return store.root / name / version


def test_tampered_weights_refused(ae_store: ModelStore) -> None:
    path = _version_dir(ae_store, "ae@v0001") / "weights.safetensors"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # one flipped bit in a tensor: the file still parses, the hash does not match
    path.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="sha256"):
        ae_store.load("ae@v0001", require_calibration=False)


def test_missing_weights_refused(ae_store: ModelStore) -> None:
    (_version_dir(ae_store, "ae@v0001") / "weights.safetensors").unlink()
    with pytest.raises(ModelIntegrityError, match="missing"):
        ae_store.load("ae@v0001", require_calibration=False)


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda m: m.update(architecture="no_such_model"), "unknown architecture"),
        (lambda m: m.update(kwargs={"width": 16, "latent": 16}), "do not fit"),
        (lambda m: m.update(surprise=1), "invalid"),
        (lambda m: m.update(version="v0042"), "claims"),
        (lambda m: m.update(channels=1), "channels"),
    ],
)
def test_inconsistent_manifest_refused(ae_store: ModelStore, edit, match: str) -> None:
    path = _version_dir(ae_store, "ae@v0001") / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    path.write_text(json.dumps(manifest))
    with pytest.raises(ModelIntegrityError, match=match):
        ae_store.load("ae@v0001", require_calibration=False)


def test_garbage_manifest_refused(ae_store: ModelStore) -> None:
    (_version_dir(ae_store, "ae@v0001") / "manifest.json").write_text("{not json")
    with pytest.raises(ModelIntegrityError):
        ae_store.load("ae@v0001", require_calibration=False)


def test_uncalibrated_model_refused_by_default(ae_store: ModelStore) -> None:
    with pytest.raises(ModelIntegrityError, match="calibration"):
        ae_store.load("ae@v0001")


def test_unknown_references(ae_store: ModelStore) -> None:
    for ref in ("nope@v0001", "ae@v9999", "ae", "ae@staging", "../x@v0001"):
        with pytest.raises(ModelNotFound):
            ae_store.resolve(ref)


def test_versions_are_sequential_and_immutable(ae_store: ModelStore) -> None:
    model = create_model("autoencoder", width=8, latent=16)
    m2 = publish(ae_store, "ae", "autoencoder", model, kwargs={"width": 8, "latent": 16})
    assert m2.version == "v0002" and ae_store.versions("ae") == ["v0001", "v0002"]
    with pytest.raises(FileExistsError):
        ae_store.backend.put_tree_exclusive("ae/v0001", {"manifest.json": b"{}"})


def test_promote_rollback_and_delete(ae_store: ModelStore) -> None:
    model = create_model("autoencoder", width=8, latent=16)
    for _ in range(2):
        publish(ae_store, "ae", "autoencoder", model, kwargs={"width": 8, "latent": 16})
    # These versions are uncalibrated (no worker could serve them): this test is about alias mechanics.
    ae_store.promote("ae", "v0001", verify=False)
    assert ae_store.resolve("ae") == ("ae", "v0001")
    ae_store.promote("ae", "v0002", verify=False)
    ae_store.promote("ae", "v0003", verify=False)
    ae_store.promote("ae", "v0001", "staging", verify=False)
    assert ae_store.resolve("ae@production") == ("ae", "v0003")
    assert ae_store.resolve("ae@staging") == ("ae", "v0001")
    assert ae_store.rollback("ae") == "v0002"
    assert ae_store.resolve("ae") == ("ae", "v0002")
    with pytest.raises(ModelIntegrityError, match="alias"):
        ae_store.delete("ae", "v0002")
    ae_store.delete("ae", "v0003")  # not aliased any more
    assert ae_store.versions("ae") == ["v0001", "v0002"]
    assert ae_store.rollback("ae") == "v0001"
    with pytest.raises(ModelNotFound):
        ae_store.rollback("ae")
    leftovers = [p.name for p in ae_store.root.rglob(".*")]
    assert leftovers == []  # no temp / staging files left behind


def test_promote_verifies_what_the_alias_will_point_at(ae_store: ModelStore) -> None:
    with pytest.raises(ModelIntegrityError, match="calibration"):
        ae_store.promote("ae", "v0001")  # a worker would refuse an uncalibrated version
    with pytest.raises(ModelNotFound):
        ae_store.resolve("ae@production")  # so the alias was not written


def test_malformed_alias_file_is_an_integrity_error(ae_store: ModelStore) -> None:
    ae_store.promote("ae", "v0001", verify=False)
    (ae_store.root / "ae" / "aliases" / "production.json").write_text('{"version": "../../x"}')
    with pytest.raises(ModelIntegrityError, match="no valid version"):
        ae_store.resolve("ae")


def test_camera_thresholds_beside_the_model(ae_store: ModelStore) -> None:
    ae_store.set_camera_thresholds("ae@v0001", {"cam-2": 0.7})
    assert ae_store.camera_thresholds("ae", "v0001") == {"cam-2": 0.7}
    with pytest.raises(ValueError):
        ae_store.set_camera_thresholds("ae@v0001", {"cam-2": 1.5})


def test_normalisation_puts_threshold_at_half() -> None:
    cal = Calibration(threshold=2.0, scale=0.5, normal_median=1.0, method="normal_quantile", pixel_threshold=0.1,
                      n_normal=10, flagged_normal_fraction=0.0)
    out = normalise_scores(np.array([-1e9, 1.0, 2.0, 3.0, 1e9]), cal)
    assert out[2] == pytest.approx(0.5)
    assert np.all(np.diff(out) >= 0) and out[0] >= 0 and out[-1] <= 1


def test_a_tight_calibration_still_resolves_scores_well_above_its_threshold() -> None:
    """Threshold a hair above the normals' median: scores at 2x and 3x the threshold stay apart and below 1."""
    cal = Calibration(threshold=0.030, scale=0.001 / np.log(99), normal_median=0.029, method="order_statistic", pixel_threshold=0.1,
                      n_normal=48, flagged_normal_fraction=0.0)
    out = normalise_scores(np.array([0.029, 0.030, 0.060, 0.090, 0.300, 3.0]), cal)
    assert out[0] == pytest.approx(0.01, abs=1e-3) and out[1] == pytest.approx(0.5)
    assert 0.5 < out[2] < out[3] < out[4] < 1.0  # distinct, so each could be a camera's own threshold
    assert out[5] == 1.0  # a hundred times the threshold is beyond what the scale expresses


def test_backend_rejects_escaping_keys(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        LocalBackend(tmp_path).read_bytes("../../etc/passwd")
