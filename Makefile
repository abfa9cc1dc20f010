# The two commands: `make run` (a local stack with the Graph emulator) and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test install lock-check lock upgrade redis nginx wrk lint openapi bench clean tools check-deploy

# --- Python packages: one lock for every install (README, "Dependencies") -------------
# uv.lock holds every Python package of the project, exact and hashed: the service's
# runtime, the emulator (./emulator, a workspace member) and the groups of
# pyproject.toml's [dependency-groups]. Each target installs exactly the groups it needs
# from it; nothing here resolves versions by itself (`uv sync --locked`), only `make lock`
# and `make upgrade` do. uv itself lives in its own venv, installed hash-checked from
# uv-requirements.txt, the version pyproject.toml's [tool.uv] required-version names (uv
# refuses to run as any other).
UV_HOME := .venv-uv
UV := $(UV_HOME)/bin/uv
RUN_GROUPS := --group emulator
TEST_GROUPS := --group test --group lint
BENCH_GROUPS := --group test --group bench
TOOLS_GROUPS := --only-group deploy-tools
LOCK_MISMATCH := uv.lock is missing or does not match pyproject.toml: run "make lock", then commit uv.lock with pyproject.toml

$(UV): uv-requirements.txt
	$(PYTHON) -m venv $(UV_HOME)
	$(UV_HOME)/bin/pip install --quiet --disable-pip-version-check --require-hashes -r $<
	touch $@

# Fails, saying what to do, when the lock is gone or pyproject.toml has changed since it
# was made: the install targets never re-resolve on their own.
lock-check: | $(UV)
	@[ -f uv.lock ] || { echo '$(LOCK_MISMATCH)' >&2; exit 1; }
	@$(UV) lock --check --quiet --python $(PYTHON) || { echo '$(LOCK_MISMATCH)' >&2; exit 1; }

# Re-resolve after editing pyproject.toml: versions already locked stay where the ranges
# still allow them. Commit uv.lock with pyproject.toml.
lock: | $(UV)
	$(UV) lock --python $(PYTHON)

# Every package to the newest release the ranges allow, then lint, types and the tests.
upgrade: | $(UV)
	$(UV) lock --upgrade --python $(PYTHON)
	$(MAKE) test

# The test and lint groups, exactly (what CI runs with). `make run` and `make bench` add
# their groups beside whatever is there (--inexact), so switching targets removes nothing.
install: lock-check
	$(UV) sync --locked --python $(PYTHON) $(TEST_GROUPS)

# Install a Debian package when its command is missing: as root, or with sudo. $(1) the
# command, $(2) the package, $(3) another test that must also fail (nginx is in /usr/sbin).
define debian_package
	@if ! command -v $(1) >/dev/null $(3); then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing $(2) with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null; \
	  elif command -v sudo >/dev/null && command -v apt-get >/dev/null; then \
	    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null; \
	  else \
	    echo "$(1) is missing: install it (Debian: apt-get install $(2)) and retry" >&2; exit 1; \
	  fi; \
	fi
endef

# redis-server is needed by `make run` (local Redis) and by the end-to-end tests.
redis:
	$(call debian_package,redis-server,redis-server)

# nginx is the proxy in front of gunicorn in `make run`, the end-to-end tests and the bench
# (deploy/base/proxy/nginx.conf.template); Debian's package, run as the current user.
nginx:
	$(call debian_package,nginx,nginx,&& [ ! -x /usr/sbin/nginx ])

# wrk is the bench's load generator (tests/bench/wrk.py); Debian's package.
wrk:
	$(call debian_package,wrk,wrk)

# A newcomer's first command: the service, the emulator and nothing of the test tools.
run: lock-check redis nginx
	$(UV) sync --locked --inexact --python $(PYTHON) $(RUN_GROUPS)
	$(BIN)/python -m local_stack

lint: install
	$(BIN)/ruff check service emulator tests
	$(BIN)/ruff format --check service emulator tests
	$(BIN)/mypy

test: install redis nginx lint check-deploy
	$(BIN)/pytest

# Rewrite openapi.yaml from the code (a test fails when the committed file is stale).
openapi: install
	$(BIN)/python -m service.openapi > openapi.yaml

clean:
	rm -rf $(VENV) $(TOOLS) $(UV_HOME) $(RENDERED) .run .pytest_cache .mypy_cache .ruff_cache

# A bounded benchmark on loopback (not run by `make test`: speed is measured, not asserted):
# issue 11's scenarios and issue 22's costs of tracing and of REDIS_AUTH=entra (tests/bench/run.py;
# rewrites docs/performance.md and its chart),
# then the slow-clients comparison, shortened here so the whole stays under 6 minutes on
# 2 cores (`python -m tests.bench.slow_clients` alone runs its full 60 s case).
# BENCH_ARGS passes options, e.g. `make bench BENCH_ARGS="--quick --skip 6"`.
BENCH_ARGS ?=
SLOW_CLIENTS_ARGS ?= --quiet-seconds 5 --seconds 20 --direct-seconds 5
bench: lock-check redis nginx wrk
	$(UV) sync --locked --inexact --python $(PYTHON) $(BENCH_GROUPS)
	$(BIN)/python -m tests.bench.run $(BENCH_ARGS)
	$(BIN)/python -m tests.bench.slow_clients $(SLOW_CLIENTS_ARGS)

# --- Container image and Kubernetes manifests (docs/operations.md) ----------------------
# The scanners live in their own venv (uv.lock's deploy-tools group); promtool comes from Debian's prometheus package,
# unpacked into it rather than installed (no Prometheus server, no service started).
TOOLS := .venv-tools
TBIN := $(TOOLS)/bin
RENDERED := build/deploy
KUBERNETES_VERSION := 1.37.0
CHECKOV := $(TBIN)/checkov --quiet --compact --skip-download

# The deploy-tools group alone, in its own venv, from the same lock.
$(TOOLS)/.installed: uv.lock pyproject.toml | lock-check
	UV_PROJECT_ENVIRONMENT=$(TOOLS) $(UV) sync --locked --python $(PYTHON) $(TOOLS_GROUPS)
	touch $@

$(TBIN)/promtool: | $(TOOLS)/.installed
	@if command -v promtool >/dev/null; then \
	  ln -sf "$$(command -v promtool)" $@; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  echo "unpacking promtool from Debian's prometheus package into $(TOOLS)"; \
	  rm -rf $(TOOLS)/deb && mkdir -p $(TOOLS)/deb && cd $(TOOLS)/deb \
	  && { apt-get download -qq -o APT::Sandbox::User=root prometheus 2>/dev/null \
	       || { apt-get update -qq && apt-get download -qq -o APT::Sandbox::User=root prometheus; }; } \
	  && dpkg-deb -x prometheus_*.deb root && rm prometheus_*.deb; \
	  ln -sf "$(CURDIR)/$(TOOLS)/deb/root/usr/bin/promtool" "$(CURDIR)/$@"; \
	else \
	  echo "promtool is missing: install Debian's prometheus package (it contains promtool)" >&2; exit 1; \
	fi

tools: $(TOOLS)/.installed $(TBIN)/promtool

# Lint the Dockerfile, render both overlays with kustomize, validate them strictly against
# the Kubernetes schemas, scan them (and the Dockerfile) with checkov, check the alert rules
# and run their unit tests. tests/deploy/ adds the structural checks and the image test.
check-deploy: tools
	$(TBIN)/hadolint Dockerfile
	rm -rf $(RENDERED) && mkdir -p $(RENDERED)
	for overlay in dev prod; do \
	  $(TBIN)/kubectl kustomize deploy/overlays/$$overlay > $(RENDERED)/$$overlay.yaml || exit 1; \
	done
	$(TBIN)/kubernetes-validate --strict --quiet --kubernetes-version $(KUBERNETES_VERSION) \
	  $(RENDERED)/dev.yaml $(RENDERED)/prod.yaml deploy/examples/secret.example.yaml
	$(CHECKOV) --framework kubernetes \
	  -f $(RENDERED)/dev.yaml -f $(RENDERED)/prod.yaml -f deploy/examples/secret.example.yaml
	$(CHECKOV) --framework dockerfile -f Dockerfile
	$(CHECKOV) --framework secrets -d deploy -f Dockerfile -f docs/operations.md
	$(TBIN)/promtool check rules deploy/monitoring/alerts.yaml
	$(TBIN)/promtool test rules deploy/monitoring/alerts.test.yaml
