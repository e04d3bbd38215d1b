"""The README and docs/ as a newcomer meets them on a clean clone: links resolve, commands run, deploy files hold.

The checks read a fresh `git clone` of this checkout's HEAD, so a link to a file that was never
committed fails here even though it exists in the working tree.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from parkwatch.cliparser import build_parser
from parkwatch.settings import Settings
from tests.services import free_port

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


@pytest.fixture(scope="module")
def clone() -> Iterator[Path]:
    """A clean clone of HEAD, in a folder others may traverse (the embedded server's user reads it as root)."""
    folder = Path(tempfile.mkdtemp(prefix="pw-clone-", dir="/var/tmp"))
    folder.chmod(0o755)
    subprocess.run(["git", "clone", "-q", str(ROOT), str(folder / "p")], check=True)
    yield folder / "p"
    shutil.rmtree(folder, ignore_errors=True)


def _markdown(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    return {_slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", text, re.MULTILINE)}


def test_every_relative_link_resolves_on_a_clean_clone(clone: Path) -> None:
    """Each link in the README and docs/ points at a committed file, and each #anchor at a heading."""
    broken = []
    for page in _markdown(clone):
        for target in LINK.findall(FENCE.sub("", page.read_text())):
            if re.match(r"^[a-z]+:", target):
                continue  # http(s), mailto: outside the repository
            path_part, _, anchor = target.partition("#")
            resolved = (page.parent / path_part).resolve() if path_part else page
            if not resolved.exists():
                broken.append(f"{page.relative_to(clone)}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                broken.append(f"{page.relative_to(clone)}: {target} (no such heading)")
    assert broken == []
    # the reference notes code cites are there
    for note in ("hj212.md", "standards.md", "ceilings.md"):
        assert (clone / "docs" / "reference" / note).exists()


def _commands(root: Path) -> list[tuple[str, list[str]]]:
    """`parkwatch ...` command lines shown in shell blocks, continuation lines joined; synopses left out."""
    found = []
    for page in _markdown(root):
        for lang, body in FENCE.findall(page.read_text()):
            if lang not in ("", "sh", "bash", "shell"):
                continue
            for raw in body.replace("\\\n", " ").splitlines():
                last = raw.strip().removeprefix("$ ").split("|")[-1].strip()
                if not last.startswith("parkwatch "):
                    continue
                command = last.split(" #")[0].split("<")[0].strip()
                if re.search(r"\[|\.\.\.|\bN\b|\bFILE\b|\bID\b|\bS\b", command):
                    continue  # a synopsis ([--flag N]), not a command to type
                found.append((f"{page.relative_to(root)}: {command}", shlex.split(command)[1:]))
    return found


def test_every_parkwatch_command_in_the_docs_parses(clone: Path) -> None:
    """Each `parkwatch` command a page shows names real subcommands and options."""
    commands = _commands(clone)
    assert len(commands) >= 5  # the docs do show commands: the extraction found them
    for where, args in commands:
        with pytest.raises(SystemExit) as done:
            build_parser().parse_args([*args, "--help"])
        assert done.value.code == 0, where


def test_quickstart_demo_on_a_bare_machine(clone: Path) -> None:
    """The README's first command, in a network namespace with nothing listening: Mosquitto started from deploy/mosquitto.conf, embedded PostgreSQL, verdicts."""
    stamp = ROOT / ".venv" / ".parkwatch-installed"
    assert stamp.exists(), "run the tests through `bash deploy/quickstart.sh test`, which sets up .venv"
    (clone / ".venv").symlink_to(ROOT / ".venv")
    pyproject = clone / "pyproject.toml"
    os.utime(pyproject, (stamp.stat().st_mtime - 1,) * 2)  # the set-up is current: no install offline
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARKWATCH_")}
    env.update({"PARKWATCH_EMBEDDED_DIR": str(clone.parent / "embedded"), "PARKWATCH_API_PORT": str(free_port())})
    pid_file = clone / ".parkwatch" / "mosquitto" / "mosquitto.pid"
    try:
        result = subprocess.run(
            [
                "unshare",
                "--net",
                "--",
                "sh",
                "-c",
                "ip link set lo up && exec bash deploy/quickstart.sh demo --parks 1 --duration 15",
            ],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "quickstart: starting Mosquitto with deploy/mosquitto.conf" in result.stderr
    notes = [line for line in result.stdout.splitlines() if line.startswith("parkwatch demo:")]
    assert notes[0].startswith("parkwatch demo: PostgreSQL is not reachable at 127.0.0.1:5432: using an embedded")
    # the broker it started runs with parkwatch's settings: no note about them, no embedded broker
    assert not any("broker" in note for note in notes[:2] if "PostgreSQL" not in note)
    assert "/api/v1/compliance?park_id=cs-p1&verdict=exceedance" in result.stdout


def test_deploy_files_name_real_settings_and_commands(clone: Path) -> None:
    """Every PARKWATCH_* variable the deploy files set is a setting; every parkwatch command in them parses."""
    deploy = clone / "deploy"
    texts = {p.name: p.read_text() for p in [*deploy.glob("*"), *(deploy / "systemd").glob("*")] if p.is_file()}
    named = {m for text in texts.values() for m in re.findall(r"PARKWATCH_([A-Z_]+)", text)}
    assert named, "the deploy files set parkwatch's settings"
    test_only = {"TEST_PG", "TEST_MQTT_HOST", "TEST_MQTT_PORT"}
    assert named - test_only <= set(Settings.model_fields), named - set(Settings.model_fields)
    commands = [
        shlex.split(m)[1:]
        for text in texts.values()
        for m in re.findall(r"(?:venv/bin/|exec |\")(parkwatch (?:serve|migrate|gateway)[^\n\"&]*)", text)
    ]
    assert len(commands) >= 6
    for args in commands:
        with pytest.raises(SystemExit) as done:
            build_parser().parse_args([*args, "--help"])
        assert done.value.code == 0, args

    compose = yaml.safe_load(texts["compose.yaml"])
    assert set(compose["services"]) == {"db", "mosquitto", "parkwatch", "gateway"}
    build = compose["services"]["parkwatch"]["build"]
    assert (deploy / build["context"] / build["dockerfile"]).exists()
    mounted = compose["services"]["mosquitto"]["volumes"][0].split(":")[0]
    assert (deploy / mounted).resolve() == (deploy / "mosquitto.conf").resolve()
    for source in re.findall(r"^COPY (\S+)", texts["Dockerfile"], re.MULTILINE):
        assert (clone / source).exists(), source


def test_systemd_units_verify(clone: Path) -> None:
    """systemd itself reads each unit without a warning (paths pointed at this machine's parkwatch)."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze (package systemd) checks the units"
    units = clone.parent / "units"
    units.mkdir()
    for unit in (clone / "deploy" / "systemd").glob("*.service"):
        text = unit.read_text().replace(
            "/opt/parkwatch/venv/bin/parkwatch", str(Path(sys.executable).parent / "parkwatch")
        )
        (units / unit.name).write_text(text)
    result = subprocess.run(
        [analyze, "verify", *sorted(str(u) for u in units.glob("*.service"))],
        capture_output=True,
        text=True,
        check=False,
    )
    problems = [line for line in result.stderr.splitlines() if str(units) in line]
    assert result.returncode == 0, result.stderr
    assert problems == []
