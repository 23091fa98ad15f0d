# kobot — two commands for a newcomer: `make run` and `make test`. Everything else is for developers.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test bench static lint layers security typecheck playbook-lint unit system-packages clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

## run: start kobot with the terminal chat, an embedded Valkey (persisted under .kobot) and an in-process worker
run: $(STAMP)
	$(BIN)/kobot chat

## test: install every Python and Debian package the tests need, then lint, check the layers, scan for
## security mistakes, type-check, lint the playbooks and run the whole suite
test: $(STAMP) system-packages static unit

# The static checks, two at a time: ansible-lint takes a minute on one core while mypy and the rest take
# the other, where one after the other they left a core idle.
static: $(STAMP)
	$(MAKE) --no-print-directory -j2 --output-sync=target lint layers security typecheck playbook-lint

system-packages:
	@pkgs=$$(sed -e 's/#.*//' tests/apt-packages.txt | xargs); \
	missing=$$(for p in $$pkgs; do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done | xargs); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check kobot workers commands alerts bot tests
	$(BIN)/ruff format --check kobot workers commands alerts bot tests

# the import contract in pyproject.toml: each layer imports only the layers below it
layers: $(STAMP)
	$(BIN)/lint-imports --no-cache

# bandit, configured under [tool.bandit] in pyproject.toml; a finding fails the build
security: $(STAMP)
	$(BIN)/bandit -q -c pyproject.toml -r kobot workers commands alerts bot

typecheck: $(STAMP)
	$(BIN)/mypy

# ansible-lint's production profile over the playbooks and roles (playbooks/.ansible-lint), offline
playbook-lint: $(STAMP)
	@cd playbooks && report=$$(PATH="$(CURDIR)/$(BIN):$$PATH" NO_COLOR=1 ANSIBLE_NOCOLOR=1 \
		"$(CURDIR)/$(BIN)/ansible-lint" --offline --nocolor 2>&1); status=$$?; echo "$$report"; \
	[ $$status = 0 ] && grep -q "Profile 'production' was required, and it passed" <<< "$$report"

# Two processes, a test file each at a time (module fixtures stay shared): most tests wait on real servers,
# SSH test hosts and subprocesses, so the suite takes about half as long; each process has its own Valkey,
# temp dirs and host lab (the lab leases its own subnet).
unit: $(STAMP)
	$(BIN)/pytest -q -n 2 --dist loadfile --durations=25

## bench: print this machine's figures (not a test: nothing here passes or fails on time)
bench: $(STAMP) system-packages
	$(BIN)/python -m tests.bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
