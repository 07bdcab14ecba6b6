# fraudstream: the two commands of the quick start are `make demo` and `make test`.
.PHONY: setup demo test test-quick test-full lint up down status bench clean

setup:            ## install everything (system packages, .venv, pinned pip packages)
	bash scripts/setup.sh

demo: setup       ## live demo: embedded Kafka + Redis, train a first model, stream simulated traffic, show alerts
	bash scripts/demo.sh

test:             ## set up, lint, type-check, start the test stack, run the whole suite with the fault tests and soak (CI)
	MODE=full bash scripts/test.sh

test-fast:        ## the same without the fault tests (Redis outage, broker restart, 100k-event SIGKILLs)
	MODE=default bash scripts/test.sh

test-quick:       ## unit tests only, no servers
	MODE=quick bash scripts/test.sh

test-soak:        ## the leak check alone (allocations per processed event, in-process; also part of make test)
	MODE=soak bash scripts/test.sh

lint: setup
	.venv/bin/ruff check . && .venv/bin/mypy

up: setup
	.venv/bin/fraudstream up

down:
	.venv/bin/fraudstream down

status:
	.venv/bin/fraudstream status

bench: setup      ## benchmarks: writes bench/results/*.json and *.md
	.venv/bin/python -m bench

clean: down
	rm -rf .fraudstream reports bench/results
