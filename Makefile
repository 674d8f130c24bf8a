# Shortcuts for the usual commands; the real work is in scripts/ and cargo.
.DEFAULT_GOAL := help

.PHONY: help build run test lint fmt bench migrate cluster

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z]+:.*## / {printf "  %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## Release build of the service
	cargo build --release --locked

run: ## Run the service (release build)
	cargo run --release

test: ## The whole test suite (installs what it needs)
	bash scripts/test.sh

lint: ## shellcheck, cargo fmt --check and clippy
	bash scripts/test.sh lint

fmt: ## Format the Rust code
	cargo fmt --all

bench: ## Benchmarks
	bash bench/run.sh

migrate: ## Apply database migrations (DATABASE_URL)
	cargo run --release -- migrate

cluster: ## Local 3-node minikube cluster for the platform (docs/deploy.md)
	bash deploy/cluster/minikube.sh up
