# The README's commands. Everything lands in ignored folders: .venv, .cache (jars), .run (service
# data and logs), models (the model store).
.PHONY: help demo demo-bridge test setup services stop status bench screenshots images containers-check
.DEFAULT_GOAL := help

help:  ## this list: each target and what it does
	@grep -E '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

demo:  ## install, start services, run the end-to-end demo
	bash scripts/demo.sh

demo-bridge:  ## the demo with linewatch-bridge serving the verdicts over OPC UA and MQTT (mosquitto)
	bash scripts/demo.sh --bridge

test:  ## the whole suite on real Kafka and Redis (what CI runs)
	bash scripts/test.sh

setup:  ## install .venv and dependencies only
	bash scripts/setup.sh

services:  ## start Kafka and Redis on loopback
	bash deploy/local/services.sh start

stop:  ## stop the services the scripts started
	bash deploy/local/services.sh stop
	bash scripts/mosquitto.sh stop

status:  ## say which services run
	bash deploy/local/services.sh status

bench:  ## the pipeline benchmark (JSON under bench/results/)
	bash scripts/setup.sh && bash deploy/local/services.sh start && .venv/bin/python bench/bench_pipeline.py

screenshots:  ## docs/view-*.png from a live pipeline (the README shows one)
	bash scripts/screenshots.sh

images:  ## every container image, built with podman from a local Debian base (deploy/podman/build.sh)
	bash deploy/podman/build.sh

containers-check:  ## images + compose, Kubernetes (kube play) and secured stacks end to end with podman (docs/deploy.md)
	bash deploy/podman/check.sh
