"""`evaluate` at the calibrated threshold: rates with Clopper-Pearson intervals beside the promise, as tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from model_store.calibration import calibrate, clopper_pearson
from model_store.cli import main
from model_store.evaluation import at_threshold, threshold_tables_html
from model_store.manifest import Calibration

from model_store_helpers import write_mvtec


def _cal(threshold: float, bound: float | None = 0.03) -> Calibration:
    promise = {"target_far": 0.001, "confidence": 0.95, "far_bound": bound, "exceedances": 0, "n_needed": 2995} if bound else {}
    return Calibration(threshold=threshold, scale=0.1, normal_median=0.0, method="order_statistic", pixel_threshold=0.5,
                       n_normal=76, flagged_normal_fraction=0.0, **promise)


def test_rates_counts_and_intervals_at_the_threshold() -> None:
    labels = np.r_[np.zeros(20, int), np.ones(10, int)]
    scores = np.r_[np.linspace(0, 1, 20), 0.2, np.full(9, 1.5)]  # 3 good images above 0.86 (0.89, 0.95, 1); 9 defects
    at = at_threshold(labels, scores, _cal(0.86), 0.95)
    assert (at["false_alarms"], at["n_good"], at["detections"], at["n_defect"]) == (3, 20, 9, 10)
    assert at["false_alarm_rate"] == pytest.approx(0.15) and at["detection_rate"] == pytest.approx(0.9)
    assert at["false_alarm_ci"] == pytest.approx(list(clopper_pearson(3, 20, 0.95)))
    assert at["detection_ci"] == pytest.approx(list(clopper_pearson(9, 10, 0.95)))
    assert at["target_far"] == 0.001 and at["far_bound"] == 0.03 and at["calibration_n"] == 76
    assert at["bound_holds"] is False  # 3 of 20: the interval starts at 3.2 %, above a 3 % bound


def test_bound_holds_while_the_interval_reaches_it() -> None:
    labels = np.zeros(50, int)
    scores = np.r_[np.zeros(49), 1.0]  # 1 of 50 = 2 %, interval 0.05 % .. 10.6 %
    assert at_threshold(labels, scores, _cal(0.5, bound=0.03), 0.95)["bound_holds"] is True
    assert at_threshold(labels, scores, _cal(0.5, bound=0.0004), 0.95)["bound_holds"] is False


def test_report_header_is_tables_not_json() -> None:
    labels = np.r_[np.zeros(20, int), np.ones(10, int)]
    scores = np.r_[np.linspace(0, 1, 20), 0.2, np.full(9, 1.5)]
    text = threshold_tables_html(at_threshold(labels, scores, _cal(0.86), 0.95))
    assert text.count("<table>") == 2 and '{"' not in text
    assert "3 of 20" in text and "9 of 10" in text and "15.00 %" in text and "broken" in text
    assert "0.10 %" in text and "3.00 %" in text  # target and stated bound side by side
    old = threshold_tables_html(at_threshold(labels, scores, _cal(0.86, bound=None), 0.95))
    assert "no stated bound" in old and old.count("<table>") == 1
    assert "no calibration" in threshold_tables_html(None)


def test_evaluate_cli_reports_the_promise(tmp_path: Path, capsys) -> None:
    data = write_mvtec(tmp_path / "part", n_train=12, n_test=5)
    store = ["--store", str(tmp_path / "store"), "--threads", "1"]
    tiny = ["--input-size", "32", "--batch-size", "4", "--no-progress", "--arch", "autoencoder", "--set", "width=4",
            "--set", "latent=8", "--set", "depth=2", "--steps", "2", "--checkpoint", str(tmp_path / "ck.safetensors")]
    assert main([*store, "train", str(data), "--name", "p", "--target-far", "0.05", *tiny]) == 0
    capsys.readouterr()
    assert main([*store, "evaluate", "p@v0001", str(data), "--report", str(tmp_path / "r"), "--confidence", "0.9"]) == 0
    at = json.loads(capsys.readouterr().out)["at_threshold"]
    assert at["n_good"] == 5 and at["n_defect"] == 5 and at["ci_confidence"] == 0.9 and at["target_far"] == 0.05
    assert at["false_alarm_ci"] == pytest.approx(list(clopper_pearson(at["false_alarms"], 5, 0.9)))
    html_text = (tmp_path / "r" / "report.html").read_text()
    assert "<caption>At the calibrated threshold" in html_text and f"{at['false_alarms']} of 5" in html_text
    assert "At the calibrated threshold: {" not in html_text
