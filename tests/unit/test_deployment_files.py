"""docker-compose.yml and the Dockerfile stay consistent with the code (no Docker engine runs here)."""

from __future__ import annotations

import inspect
from pathlib import Path

import click
import yaml

from app import settings as settings_module
from app.embedded import EMBEDDED_MAJOR

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_every_compose_variable_is_a_setting_the_app_reads() -> None:
    """A variable in compose that Settings.from_env never reads would be silently ignored."""
    source = inspect.getsource(settings_module)
    for name, service in COMPOSE["services"].items():
        for variable in service.get("environment", {}):
            if name == "postgres":
                continue
            assert f'"{variable}"' in source, f"{name}: {variable} is not read by Settings.from_env"


def test_compose_commands_are_bookmarks_commands() -> None:
    """Every app service runs a `bookmarks` command that exists, with options it takes."""
    from app.cli import bookmarks

    for name, service in COMPOSE["services"].items():
        if "command" not in service:
            continue
        program, *args = service["command"]
        assert program == "bookmarks", name
        command: click.Command = bookmarks
        while isinstance(command, click.Group) and args and args[0] in command.commands:
            command = command.commands[args.pop(0)]
        assert not isinstance(command, click.Group), (name, service["command"])
        options = {flag for param in command.params for flag in param.opts}
        assert all(arg in options for arg in args if arg.startswith("-")), (name, service["command"])


def test_web_waits_for_migrations_and_binds_to_loopback() -> None:
    """Migrations run once before web starts; the published port is on 127.0.0.1 only."""
    web = COMPOSE["services"]["web"]
    assert web["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert all(port.startswith("127.0.0.1:") for port in web["ports"])
    assert "pg_isready" in " ".join(COMPOSE["services"]["postgres"]["healthcheck"]["test"])


def test_the_image_installs_every_package() -> None:
    """The Dockerfile copies each top-level package the project ships."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("app", "db", "workers"):
        assert f"COPY {package} ./{package}" in dockerfile


def test_compose_runs_the_embedded_major_with_its_volume_where_postgres_18_wants_it() -> None:
    """postgres:18 (the embedded default's major) keeps PGDATA in /var/lib/postgresql/18/docker: the volume
    goes on /var/lib/postgresql, not /var/lib/postgresql/data (a mount there makes 18 refuse to start)."""
    postgres = COMPOSE["services"]["postgres"]
    assert postgres["image"] == f"postgres:{EMBEDDED_MAJOR}"
    assert postgres["volumes"] == ["pgdata:/var/lib/postgresql"]
    assert "PGDATA" not in postgres["environment"], "the image's own PGDATA keeps the upgrade layout"
    assert "pgdata" in COMPOSE["volumes"], "a named volume: `docker compose down` keeps the data"
