"""The ingest plan: its sessions' names, groups and spools, what a new plan retires, where it is kept (no services)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ingest.registry import REGISTRY_CACHE
from ingest.service import subscriptions
from parkwatch import ingestplan
from parkwatch.ingestplan import Member, members, previous, record, to_retire
from parkwatch.settings import Settings
from parkwatch.supervisor import part_command, want_processes


def _settings(tmp_path: Path, **changes: object) -> Settings:
    return Settings(SPOOL_DIR=tmp_path / "spool", MQTT_CLIENT_ID="pw-ingest", **changes)  # type: ignore[arg-type]


def test_one_process_is_the_configured_session_and_several_are_one_group(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert members(settings, 1) == [Member("pw-ingest", None, str(tmp_path / "spool"))]
    two = members(settings, 2)
    assert [m.client_id for m in two] == ["pw-ingest-0", "pw-ingest-1"]
    assert {m.group for m in two} == {"pw-ingest"}
    assert [m.spool for m in two] == [str(tmp_path / "spool" / "ingest-0"), str(tmp_path / "spool" / "ingest-1")]
    assert two[1].env() == {
        "PARKWATCH_MQTT_CLIENT_ID": "pw-ingest-1",
        "PARKWATCH_SPOOL_DIR": str(tmp_path / "spool" / "ingest-1"),
        "PARKWATCH_MQTT_SHARE_GROUP": "pw-ingest",
    }
    # a configured group wins; a client id with characters no topic level may hold is cleaned
    assert {m.group for m in members(_settings(tmp_path, MQTT_SHARE_GROUP="ingest"), 3)} == {"ingest"}
    odd = Settings(SPOOL_DIR=tmp_path, MQTT_CLIENT_ID="site/a+b")
    assert {m.group for m in members(odd, 2)} == {"site_a_b"}


def test_the_filters_of_a_member_are_shared_and_of_a_lone_ingest_not() -> None:
    assert subscriptions("pw", None) == ["pw/+/+/readings", "pw/hj212/+", "pw/gateway/events"]
    assert subscriptions("pw", "g") == ["$share/g/pw/+/+/readings", "$share/g/pw/hj212/+", "$share/g/pw/gateway/events"]


def test_a_smaller_or_regrouped_plan_retires_what_it_no_longer_uses(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    three, one = members(settings, 3), members(settings, 1)
    assert to_retire(three, one) == three
    assert to_retire(one, three) == one  # the lone unshared session, once more are wanted
    assert to_retire(three, members(settings, 2)) == [three[2]]
    assert to_retire(three, three) == []
    regrouped = members(_settings(tmp_path, MQTT_SHARE_GROUP="other"), 3)
    assert to_retire(three, regrouped) == three  # same client ids, but the old filters must go


def test_the_plan_is_kept_beside_the_spools(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    assert previous(settings) == []  # a first start: nothing ran here
    (tmp_path / "spool").mkdir()
    (tmp_path / "spool" / REGISTRY_CACHE).write_text("{}")
    # an ingest ran here before plans were recorded: the lone configured session
    assert previous(settings) == members(settings, 1)
    record(settings, members(settings, 2))
    assert previous(settings) == members(settings, 2)
    stored = json.loads((tmp_path / "spool" / ingestplan.SESSIONS_FILE).read_text())
    assert [m["client_id"] for m in stored["members"]] == ["pw-ingest-0", "pw-ingest-1"]
    (tmp_path / "spool" / ingestplan.SESSIONS_FILE).write_text("not json")
    assert previous(settings) == []  # unreadable: said in the log, nothing retired blindly


def test_serve_supervises_only_when_there_is_more_than_one_process_and_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert want_processes(["ingest", "compliance"], single=False, ingests=1)
    assert want_processes(["ingest"], single=False, ingests=2)
    assert not want_processes(["ingest"], single=False, ingests=1)
    assert not want_processes(["ingest", "api"], single=True, ingests=1)
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert not want_processes(["ingest", "compliance", "alerts", "api"], single=False, ingests=1)


def test_each_part_runs_as_serve_only_that_part_in_one_process() -> None:
    argv = part_command("ingest", "ingest-1", stats_file=Path("s.json"), retire=True)
    assert argv[1:] == [
        *("-m", "parkwatch.cli", "serve", "--only", "ingest", "--single-process", "--log-tag", "ingest-1"),
        *("--stats-file", "s.json", "--retire"),
    ]
    # the stats file is the ingest's alone
    assert "--stats-file" not in part_command("api", "api", stats_file=Path("s.json"))
