# The recipes CI calls. `make ci` is what .ci/run and GitHub Actions run.
CARGO ?= cargo

.PHONY: ci fmt-check clippy test test-fast build bench corpus chart image image-archive fuzz

ci: fmt-check clippy test corpus chart image

# The manifest-edit corpus (../shared/corpus, or CORPUS=DIR): heal8s applies
# every case, the corpus's own score.py scores the outputs (needs PyYAML), and
# scripts/corpus-gate.py fails below issue 5's thresholds.
CORPUS ?= $(firstword $(wildcard ../shared/corpus /work/shared/corpus))
CORPUS_CASES ?= $(CORPUS)/cases-dev.jsonl
CORPUS_WORK ?= target/corpus
corpus:
	@test -n "$(CORPUS)" || { echo "no manifest-edit corpus found: set CORPUS=DIR"; exit 1; }
	rm -rf $(CORPUS_WORK) && mkdir -p $(CORPUS_WORK)
	$(CARGO) run --locked -q -p gitops --example corpus -- $(CORPUS_CASES) $(CORPUS_WORK)/out 2> $(CORPUS_WORK)/refusals.txt || { cat $(CORPUS_WORK)/refusals.txt; exit 1; }
	tail -1 $(CORPUS_WORK)/refusals.txt
	python3 $(CORPUS)/score.py $(CORPUS_CASES) $(CORPUS_WORK)/out --summary $(CORPUS_WORK)/summary.json --results $(CORPUS_WORK)/results.jsonl > /dev/null
	python3 scripts/corpus-gate.py $(CORPUS_WORK)/summary.json

# The Helm chart (charts/heal8s): lint and render it for several value sets,
# validate every object against the Kubernetes schemas, check the values
# schema, the policies (heal8s check-config; HEAL8S_BIN or target/debug/heal8s)
# and the RBAC per feature. Needs helm-python-sdk, kubernetes-validate and
# check-jsonschema (PyPI) and the harness's helmlite.py (HEAL8S_HARNESS).
chart:
	python3 scripts/chart-check.py

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

# The container image (Dockerfile): a static musl build of heal8s FROM scratch,
# UID 65532, built and run with podman (vfs storage, no daemon), tagged as the
# chart's default image. IMAGE_PROFILE=image is CI's faster profile;
# image-archive also saves target/image/heal8s-image.tar for `kind load`.
# Needs musl-tools, podman, runc and ca-certificates (Debian); see scripts/image.sh.
image:
	bash scripts/image.sh build

image-archive:
	bash scripts/image.sh archive

# Bench binaries that print figures (not part of CI).
bench:
	$(CARGO) bench --locked -p receiver-core --bench decide
	$(CARGO) bench --locked -p receiver --bench webhook
	$(CARGO) bench --locked -p gitops --bench patch

# Fuzzing (not part of CI): the cargo-fuzz targets in fuzz/ (the webhook
# parser, the policy loader, the manifest patcher), each for FUZZ_SECONDS,
# built with the nightly toolchain that cargo-fuzz needs; cargo-fuzz is
# installed when missing. The corpus a run grows stays in fuzz/target/corpus
# (the seeds in fuzz/corpus are only read); an input that fails is kept in
# fuzz/artifacts/<target>/. Every target runs; the recipe fails if any failed.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= webhook policy patch
FUZZ_TOOLCHAIN ?= nightly
fuzz:
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	@failed=""; \
	for t in $(FUZZ_TARGETS); do \
	  echo "== fuzz $$t for $(FUZZ_SECONDS) s"; \
	  mkdir -p fuzz/target/corpus/$$t; \
	  $(CARGO) +$(FUZZ_TOOLCHAIN) fuzz run $$t fuzz/target/corpus/$$t fuzz/corpus/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: failing inputs for:$$failed (see fuzz/artifacts/)"; exit 1; fi
