"""`train` / `calibrate` state their false-alarm promise and warn (stderr and JSON) when n is too small."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from model_store.cli import main
from model_store.store import ModelStore

from model_store_helpers import write_mvtec

TINY = ["--input-size", "32", "--batch-size", "4", "--no-progress", "--arch", "autoencoder",
        "--set", "width=4", "--set", "latent=8", "--set", "depth=2", "--steps", "2"]


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[dict, str]:
    assert main(list(args)) == 0
    out = capsys.readouterr()
    return json.loads(out.out), out.err


def test_train_warns_when_held_out_normals_cannot_promise_the_target(tmp_path: Path, capsys) -> None:
    data = write_mvtec(tmp_path / "part", n_train=20)
    store = ["--store", str(tmp_path / "store"), "--threads", "1"]
    out, err = _run(capsys, *store, "train", str(data), "--name", "p", "--target-far", "0.001",
                    "--checkpoint", str(tmp_path / "ck.safetensors"), *TINY)
    cal = out["calibration"]
    assert cal["method"] == "order_statistic" and cal["target_far"] == 0.001 and cal["n_normal"] == 2
    assert cal["n_needed"] == 2995 and cal["far_bound"] == pytest.approx(1 - 0.05 ** 0.5)
    assert len(out["warnings"]) == 1 and "2995 normal images are needed" in out["warnings"][0]
    assert "2995 normal images are needed" in err  # said on stderr too, not only in the JSON


def test_calibrate_takes_the_target_from_flag_or_setting(tmp_path: Path, capsys, monkeypatch) -> None:
    data = write_mvtec(tmp_path / "part", n_train=12, n_test=6)
    store = ["--store", str(tmp_path / "store"), "--threads", "1"]
    _run(capsys, *store, "train", str(data), "--name", "p", "--checkpoint", str(tmp_path / "ck.safetensors"), *TINY)
    # 6 normals certify 40 % at 90 % confidence: 0.6^6 = 0.047 <= 0.1
    out, err = _run(capsys, *store, "calibrate", "p@v0001", "--normal", str(data / "test" / "good"),
                    "--target-far", "0.4", "--confidence", "0.9")
    cal = out["calibration"]
    assert out["warnings"] == [] and "needed" not in err
    assert cal["target_far"] == 0.4 and cal["confidence"] == 0.9 and cal["n_normal"] == 6
    assert cal["far_bound"] <= 0.4
    assert ModelStore(tmp_path / "store").manifest(f"p@{out['version']}").calibration.far_bound == cal["far_bound"]

    monkeypatch.setenv("LW_TARGET_FAR", "0.01")  # the setting, when no flag is given
    out, err = _run(capsys, *store, "calibrate", "p@v0001", "--normal", str(data / "test" / "good"))
    assert out["calibration"]["target_far"] == 0.01 and out["calibration"]["confidence"] == 0.95
    assert "299 normal images are needed" in out["warnings"][0] and "299 normal images are needed" in err


def test_rates_outside_zero_one_are_refused_with_a_reason(tmp_path: Path, capsys, monkeypatch) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--store", str(tmp_path), "calibrate", "p", "--from-stream", "cam-1", "--target-far", "1.5"])
    assert exit_info.value.code == 2 and "between 0 and 1" in capsys.readouterr().err
    monkeypatch.setenv("LW_TARGET_FAR", "0")
    assert main(["--store", str(tmp_path), "calibrate", "p", "--from-stream", "cam-1"]) == 2
    assert "ConfigError" in capsys.readouterr().err
