#!/usr/bin/env bash
# Set up a fresh checkout and run the demo or the tests:
#   bash deploy/quickstart.sh demo     # simulated parks → MQTT → ingest → PostgreSQL → API
#   bash deploy/quickstart.sh test     # lint, type-check and the test suite (what CI runs)
# It starts PostgreSQL and Mosquitto if they are down (where it can), creates .venv and
# installs parkwatch with its development tools, then runs the command.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: bash deploy/quickstart.sh demo|test [args passed on]" >&2; exit 2; }
[ $# -ge 1 ] || usage
command=$1; shift

say() { printf 'quickstart: %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
    for _ in $(seq 1 50); do port_open "$1" && return 0; sleep 0.2; done
    return 1
}

ensure_services() {
    if ! port_open 5432; then
        if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
            say "starting PostgreSQL"
            pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
        fi
        wait_port 5432 || { say "PostgreSQL is not reachable on 127.0.0.1:5432; start it and retry"; exit 1; }
    fi
    if ! port_open 1883; then
        if command -v mosquitto >/dev/null 2>&1; then
            say "starting Mosquitto"
            mosquitto -d -c /etc/mosquitto/mosquitto.conf || true
        fi
        wait_port 1883 || { say "Mosquitto is not reachable on 127.0.0.1:1883; start it and retry"; exit 1; }
    fi
}

ensure_venv() {
    local python=${PYTHON:-python3}
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        say "parkwatch needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)"; exit 1
    fi
    [ -x .venv/bin/python ] || { say "creating .venv"; "$python" -m venv .venv; }
    local stamp=.venv/.parkwatch-installed
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        say "installing parkwatch and its development tools into .venv"
        .venv/bin/python -m pip install --quiet --upgrade pip
        .venv/bin/python -m pip install --quiet -e '.[dev]'
        touch "$stamp"
    fi
}

case "$command" in
    demo)
        ensure_services
        ensure_venv
        exec .venv/bin/parkwatch demo "$@"
        ;;
    test)
        ensure_services
        ensure_venv
        say "ruff"; .venv/bin/ruff check . && .venv/bin/ruff format --check --quiet .
        say "mypy"; .venv/bin/mypy
        say "pytest"; exec .venv/bin/pytest -q "$@"
        ;;
    *) usage ;;
esac
