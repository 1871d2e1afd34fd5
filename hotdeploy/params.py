"""Flow parameters, checked before anything runs (pure).

A flow calls these first, outside any retried task, so a typo is refused in
well under a second with one line, and no rule is opened, no container run,
nothing touched on a host.
"""
from __future__ import annotations

import re

from .errors import Refusal
from .versions import InvalidVersion, Version

MAX_VERSION_CHARS = 64
_APP = re.compile(r"[a-z][a-z0-9_]{0,63}")
_BLOCK = re.compile(r"[a-z0-9][a-z0-9-]{0,99}")      # Prefect block names: lowercase, digits, dashes
_WAVE = re.compile(r"([1-9][0-9]{0,5})(%?)")


class BadParameter(Refusal, ValueError):
    pass


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def app_name(app) -> str:
    if not isinstance(app, str) or not _APP.fullmatch(app):
        raise BadParameter(f"app {_shown(app)} is not a release name: expected an Erlang atom of at most 64 "
                           "characters, lowercase letters, digits and _ (e.g. example_app)")
    return app


def version(value, allow_latest: bool = True) -> str:
    """A version (InvalidVersion otherwise: a ValueError, like BadParameter)."""
    if allow_latest and value == "latest":
        return value
    if not isinstance(value, str) or len(value) > MAX_VERSION_CHARS:
        raise InvalidVersion(f"invalid version {_shown(value)}: at most {MAX_VERSION_CHARS} characters, "
                             "MAJOR.MINOR.PATCH" + (" or latest" if allow_latest else ""))
    return str(Version.parse(value))


def block_name(kind: str, name) -> str:
    if not isinstance(name, str) or not _BLOCK.fullmatch(name):
        raise BadParameter(f"{kind} {_shown(name)} is not a block name: lowercase letters, digits and dashes, "
                           "at most 100 characters")
    return name


def rollout(canary: int | None = None, wave_size: str | None = None, max_failed_hosts: int | None = None) -> None:
    if canary is not None and (not isinstance(canary, int) or isinstance(canary, bool) or canary < 0):
        raise BadParameter(f"canary {_shown(canary)} must be a whole number of hosts, 0 or more")
    if max_failed_hosts is not None and (not isinstance(max_failed_hosts, int) or isinstance(max_failed_hosts, bool)
                                         or max_failed_hosts < 0):
        raise BadParameter(f"max_failed_hosts {_shown(max_failed_hosts)} must be a whole number, 0 or more")
    if wave_size is not None:
        parse_wave_size(wave_size)


def parse_wave_size(text) -> tuple[int, bool]:
    """'4' -> (4, False): 4 hosts a wave; '25%' -> (25, True): a quarter of the fleet."""
    m = _WAVE.fullmatch(str(text)) if isinstance(text, (str, int)) and not isinstance(text, bool) else None
    if not m or (m.group(2) and int(m.group(1)) > 100):
        raise BadParameter(f"wave_size {_shown(text)} must be a number of hosts (1 or more) or a percentage "
                           "from 1% to 100%")
    return int(m.group(1)), bool(m.group(2))


def count(name: str, value, least: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise BadParameter(f"{name} {_shown(value)} must be a whole number, {least} or more")
    return value


def git_commit(value) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}", value):
        raise BadParameter(f"git_commit {_shown(value)} is not a commit id: letters, digits, . _ -, "
                           "at most 100 characters")
    return value


def strategy(value) -> str:
    """How hosts move: auto, hot or restart."""
    if value not in ("auto", "hot", "restart"):
        raise BadParameter(f"strategy {_shown(value)} is not one of auto (hot where the host's version allows, "
                           "else a restart), hot (refuse hosts that would need a restart), restart")
    return value
