"""Mosquitto's settings: deploy/mosquitto.conf rendered for a local broker, and a running broker's checked against it.

Run as `python -m parkwatch.brokerconf FOLDER PORT` it writes deploy/mosquitto.conf for a
broker of this user's own (listener, persistence folder and log in FOLDER) and prints its path;
deploy/quickstart.sh starts Mosquitto with it.
"""

from __future__ import annotations

import getpass
import itertools
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DEPLOY_CONF = Path(__file__).resolve().parent.parent / "deploy" / "mosquitto.conf"
PRODUCTION_CONF = DEPLOY_CONF.with_name("mosquitto-production.conf")

# Mosquitto 2.0's defaults for the settings the no-loss guarantee depends on (mosquitto.conf(5)).
DEFAULTS = {
    "persistence": "false",
    "max_queued_messages": "1000",
    "max_inflight_messages": "20",
    "max_packet_size": "0",
}
DEFAULT_PORT = 1883


def render_config(
    folder: Path,
    port: int,
    overrides: dict[str, str] | None = None,
    *,
    source: Path = DEPLOY_CONF,
    tls_port: int | None = None,
) -> Path:
    """A deploy/ config with only the listeners, the persistence folder, the log and `overrides` changed.

    The first listener moves to `port`, a second (the production file's TLS one) to `tls_port`;
    both on 127.0.0.1.
    """
    text = source.read_text()
    ports = iter([port, tls_port if tls_port is not None else port])
    text = re.sub(r"^listener .*$", lambda _m: f"listener {next(ports)} 127.0.0.1", text, flags=re.MULTILINE)
    text = re.sub(r"^persistence_location .*$", f"persistence_location {folder}/", text, flags=re.MULTILINE)
    for key, value in (overrides or {}).items():
        text, n = re.subn(rf"^{key} .*$", f"{key} {value}", text, flags=re.MULTILINE)
        if n == 0:
            text += f"\n{key} {value}\n"
    # Run as whoever runs us: as root, Mosquitto would switch to its own user, which cannot
    # write our folder.
    text += f"\nuser {getpass.getuser()}\nlog_dest file {folder}/mosquitto.log\npid_file {folder}/mosquitto.pid\n"
    path = folder / "mosquitto.conf"
    path.write_text(text)
    return path


def read_config(path: Path) -> dict[str, str]:
    """The settings of a Mosquitto config file, include_dir files merged (later lines win); listeners collected."""
    settings: dict[str, str] = {}
    listeners: list[str] = []
    _read_into(path, settings, listeners, depth=0)
    if listeners:
        settings["listener"] = " ".join(listeners)
    return settings


def _read_into(path: Path, settings: dict[str, str], listeners: list[str], depth: int) -> None:
    for raw in path.read_text(errors="replace").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        value = value.strip()
        if key == "listener":
            listeners.append(value.split()[0])
        elif key == "port":
            listeners.append(value)
        elif key == "include_dir" and depth < 3:
            for included in sorted(Path(value).glob("*.conf")):
                _read_into(included, settings, listeners, depth + 1)
        else:
            settings[key] = value


def relied_on() -> dict[str, str]:
    """The settings parkwatch relies on, as deploy/mosquitto.conf sets them (empty outside a source checkout)."""
    if not DEPLOY_CONF.exists():
        return {}
    ours = read_config(DEPLOY_CONF)
    return {key: ours[key] for key in DEFAULTS if key in ours}


@dataclass(frozen=True)
class RunningBroker:
    """A local Mosquitto process and the config file it was started with (None: no -c, all defaults)."""

    pid: int
    config: Path | None

    def settings(self) -> dict[str, str]:
        """Its effective settings for the keys parkwatch cares about, defaults filled in."""
        found = read_config(self.config) if self.config else {}
        return {**DEFAULTS, **found}

    def ports(self) -> set[int]:
        """The TCP ports it listens on."""
        found = read_config(self.config) if self.config else {}
        ports = {int(p) for p in found.get("listener", "").split() if p.isdigit()}
        return ports or {DEFAULT_PORT}


def local_brokers(proc: Path = Path("/proc")) -> list[RunningBroker]:
    """Mosquitto processes in our network namespace whose command line we may read."""
    found = []
    try:
        our_net = (proc / "self" / "ns" / "net").readlink()
    except OSError:
        our_net = None
    for entry in proc.glob("[0-9]*"):
        try:
            if (entry / "comm").read_text().strip() != "mosquitto":
                continue
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        try:
            if our_net is not None and (entry / "ns" / "net").readlink() != our_net:
                continue  # another namespace's 127.0.0.1 (a container, a test): not the broker we reach
        except OSError:
            pass  # another user's process: its namespace is not ours to read, assume the common case
        config = None
        for flag, value in itertools.pairwise(args):
            if flag in (b"-c", b"--config-file"):
                config = Path(value.decode(errors="replace"))
        if config is not None and not config.is_absolute():
            try:
                config = (entry / "cwd").resolve() / config
            except OSError:
                continue
        found.append(RunningBroker(int(entry.name), config))
    return found


def differences(port: int) -> tuple[RunningBroker, dict[str, tuple[str, str]]] | None:
    """How the local Mosquitto on `port` differs from deploy/mosquitto.conf: {key: (running, relied on)}.

    None when it cannot be told: no such process readable here (a remote broker, another
    container, another user's), its config unreadable, or no deploy/mosquitto.conf to compare with.
    """
    wanted = relied_on()
    if not wanted:
        return None
    candidates = []
    for broker in local_brokers():
        try:
            if port in broker.ports():
                candidates.append((broker, broker.settings()))
        except OSError:
            return None
    if len(candidates) != 1:
        return None  # none, or several claiming the port: cannot tell which one answers
    broker, running = candidates[0]
    diff = {}
    for key, value in wanted.items():
        have = running.get(key, DEFAULTS[key])
        if key == "max_packet_size" and (have == "0" or int(have) >= int(value)):
            continue  # larger or unlimited still lets oversized payloads reach the ingest
        if have != value:
            diff[key] = (have, value)
    return broker, diff


def main(argv: Sequence[str] | None = None) -> int:
    """Render the config for a local broker: FOLDER PORT → prints the config's path."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or not args[1].isdigit():
        print("usage: python -m parkwatch.brokerconf FOLDER PORT", file=sys.stderr)  # noqa: T201
        return 2
    folder = Path(args[0]).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    print(render_config(folder, int(args[1])))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
