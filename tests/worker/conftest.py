"""The worker tests' fixtures (model_root, worker_settings) live in tests/conftest.py: the view's
browser tests use the same trained model, which is trained once per run."""
