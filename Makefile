# Shortcuts for the usual commands; the real work is in scripts/ and cargo.
.DEFAULT_GOAL := help

.PHONY: help build run test lint fmt bench bench-scale migrate cluster

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

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

bench: ## Benchmarks (bench/README.md): the routes at 10,000 rows, then the scale scenario at 1,000,000
	bash bench/run.sh
	bash bench/scale.sh

bench-scale: ## Only the scale scenario: list, search and sort at 1,000,000 rows on both backends
	bash bench/scale.sh

migrate: ## Apply database migrations (DATABASE_URL)
	cargo run --release -- migrate

cluster: ## Local 3-node minikube cluster for the platform (docs/deploy.md)
	bash deploy/cluster/minikube.sh up
