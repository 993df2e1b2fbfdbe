# The recipes CI calls. `make ci` is what .ci/run and GitHub Actions run.
CARGO ?= cargo

.PHONY: ci fmt-check clippy test test-fast build bench

ci: fmt-check clippy test

fmt-check:
	$(CARGO) fmt --all --check

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

# The whole suite, including the end-to-end tests with a real Alertmanager
# (needs `prometheus-alertmanager` on PATH; .ci/run installs it).
test:
	$(CARGO) test --workspace --locked

# Everything that needs no external program (skips tests named real_*).
test-fast:
	$(CARGO) test --workspace --locked -- --skip real_

build:
	$(CARGO) build --release --locked -p receiver --bin heal8s

# Bench binaries that print figures (not part of CI).
bench:
	$(CARGO) bench --locked -p receiver-core --bench decide
	$(CARGO) bench --locked -p receiver --bench webhook
