"""Settings: defaults, and a bad value stops start-up with one line naming it (exit status 2)."""

from __future__ import annotations

import io
import json
import logging

import pytest

from parkwatch.logs import JsonLines
from parkwatch.settings import Settings, SettingsError, load_settings
from tests.helpers import run_cli


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """The documented defaults."""
    s = load_settings()
    assert s.DATABASE_URL == "postgresql://postgres@127.0.0.1:5432/parkwatch"
    assert s.MQTT_URL == "mqtt://127.0.0.1:1883"
    assert s.TOPIC_PREFIX == "parkwatch"
    assert (s.API_HOST, s.API_PORT) == ("127.0.0.1", 8000)
    assert s.mqtt.host == "127.0.0.1" and s.mqtt.port == 1883 and not s.mqtt.tls
    assert s.database_name == "parkwatch"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """PARKWATCH_* variables set the values; credentials are read from the MQTT URL."""
    monkeypatch.setenv("PARKWATCH_MQTT_URL", "mqtts://ingest:s%40cret@broker.example:8883")
    monkeypatch.setenv("PARKWATCH_TOPIC_PREFIX", "hunan/parks")
    monkeypatch.setenv("PARKWATCH_API_PORT", "9000")
    s = load_settings()
    assert (s.mqtt.host, s.mqtt.port, s.mqtt.tls, s.mqtt.username, s.mqtt.password) == (
        "broker.example",
        8883,
        True,
        "ingest",
        "s@cret",
    )
    assert s.TOPIC_PREFIX == "hunan/parks"
    assert s.API_PORT == 9000


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("PARKWATCH_API_PORT", "eighty", "valid integer"),
        ("PARKWATCH_API_PORT", "70000", "less than or equal to 65535"),
        ("PARKWATCH_DATABASE_URL", "mysql://root@localhost/x", "postgresql://"),
        ("PARKWATCH_DATABASE_URL", "postgresql://127.0.0.1:5432", "must name a database"),
        ("PARKWATCH_MQTT_URL", "http://127.0.0.1:1883", "mqtt://"),
        ("PARKWATCH_MQTT_URL", "mqtt://127.0.0.1:port", "invalid port"),
        ("PARKWATCH_TOPIC_PREFIX", "parks/#", "without '#'"),
        ("PARKWATCH_TOPIC_PREFIX", "parks//x", "empty levels"),
        ("PARKWATCH_DEFAULT_TIMEZONE", "Mars/Olympus", "unknown IANA time zone"),
        ("PARKWATCH_TIMESCALE", "maybe", "'auto'"),
        ("PARKWATCH_GATEWAY_TLS_PORT", "9213", "needs PARKWATCH_GATEWAY_TLS_CERT"),
        ("PARKWATCH_GATEWAY_TLS_CERT", "/nonexistent/server.crt", "no such file"),
        ("PARKWATCH_MQTT_CA_FILE", "/nonexistent/ca.crt", "no such file"),
    ],
)
def test_bad_value_is_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, fragment: str
) -> None:
    """load_settings raises SettingsError whose line names the variable as the operator wrote it."""
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    [line] = err.value.lines()
    assert line.startswith(f"invalid setting {name}: ")
    assert fragment in line


def test_cli_exits_2_with_one_line() -> None:
    """`parkwatch serve` with a bad port prints one line on stderr and exits with status 2."""
    result = run_cli("serve", env={"PARKWATCH_API_PORT": "not-a-port"}, timeout=30)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("parkwatch: invalid setting PARKWATCH_API_PORT:")


def test_settings_are_frozen() -> None:
    """A running process cannot change its settings by accident."""
    s = Settings()
    with pytest.raises(Exception, match="frozen"):
        s.API_PORT = 1  # type: ignore[misc]


def test_json_log_lines_a_collector_can_read() -> None:
    """PARKWATCH_LOG_FORMAT=json: one JSON object a record, its time in UTC, the exception with it."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonLines())
    log = logging.getLogger("parkwatch.test.json")
    log.addHandler(handler)
    try:
        try:
            int("boom")
        except ValueError:
            log.exception("station %s: 园区 %d", "p1-out", 3)
    finally:
        log.removeHandler(handler)
    [line] = out.getvalue().splitlines()
    doc = json.loads(line)
    assert doc["level"] == "ERROR" and doc["logger"] == "parkwatch.test.json"
    assert doc["message"] == "station p1-out: 园区 3" and doc["time"].endswith("+00:00")
    assert "ValueError: invalid literal for int()" in doc["exception"]
