"""Model store: versioned, hash-checked anomaly models the worker loads.

Start reading here:
- registry.py        architecture name -> entrypoint (`register_model`, `create_model`)
- models/base.py     the AnomalyModel interface every architecture implements
- models/draem.py    DRAEM (the seed model); models/autoencoder.py (the baseline)
- manifest.py        the JSON manifest written beside each model's safetensors weights
- store.py           ModelStore: <root>/<model>/<version>/, aliases, resolve/load/promote/rollback
- preprocess.py      frame -> model input: the one path for training, evaluation, calibration, serving
- data.py            image folders (MVTec layout or flat) -> tensors
- training.py        the generic training loop (time budget, checkpoints, resume)
- calibration.py     thresholds with a stated false-alarm bound, score normalisation
- commissioning.py   per-camera thresholds from the scores workers served (calibrate --from-stream)
- shadow.py          shadow report (candidate beside production) and the gate of `promote --require-shadow`
- settings.py        ModelsSettings: LW_* defaults of `linewatch-models` (store, target rate)
- evaluation.py      AUROC / AP and the HTML report; `--shift`: the same under lighting shifts
- lighting.py        photometric shifts (evaluation set) and the training augmentation (issue 27)
- image_scores.py    image-score choices from a pixel map (max of mean filter, top-k mean, above threshold)
- cli.py             `linewatch-models` command line
- quick.py           train_quick(): a small real model in seconds, for demos and pipeline tests
"""
