"""Release versions: the seed's build-timestamp scheme, made valid SemVer.

The seed used ``YYYY.MMDD.HHMM``: ``2016.0125.1530`` has a leading zero (strict
SemVer and Elixir reject it, relx mis-parses it) and two builds in one minute
collide. Here MAJOR is the year, MINOR is month*100+day and PATCH is
hh*10000+mm*100+ss, all plain integers, and a version is always strictly
greater than every version already published (same-second builds bump PATCH).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable

from .errors import Refusal

_SEMVER = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")


class InvalidVersion(Refusal, ValueError):
    pass


@dataclass(frozen=True, order=True)
class Version:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> "Version":
        """Accept only MAJOR.MINOR.PATCH with no leading zeros and nothing else.

        Versions end up in S3 keys, paths and remote command lines, so anything
        beyond digits and dots is refused rather than quoted.
        """
        if not isinstance(text, str):
            raise InvalidVersion(f"version must be a string, got {type(text).__name__}")
        m = _SEMVER.fullmatch(text)
        if m is None:
            shown = text if len(text) <= 60 else text[:57] + "..."
            raise InvalidVersion(
                f"invalid version {shown!r}: expected MAJOR.MINOR.PATCH made of integers "
                "without leading zeros (e.g. 2026.1126.113045); no prerelease, build "
                "metadata, spaces or shell characters"
            )
        return cls(*(int(g) for g in m.groups()))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


def timestamp_version(at: datetime) -> Version:
    at = at.astimezone(timezone.utc) if at.tzinfo else at
    return Version(at.year, at.month * 100 + at.day, at.hour * 10000 + at.minute * 100 + at.second)


def next_version(now: datetime, existing: Iterable[str], requested: str | None = None) -> Version:
    """The version of the next release.

    ``requested`` (explicit) must parse and be greater than every existing one;
    otherwise the build timestamp is used, bumped past the newest existing
    version when the clock has not moved on (same second, or a skewed clock).
    """
    known = sorted(Version.parse(v) for v in existing)
    newest = known[-1] if known else None
    if requested is not None:
        wanted = Version.parse(requested)
        if newest is not None and wanted <= newest:
            raise InvalidVersion(
                f"version {wanted} is not newer than {newest}, the newest in the store; "
                "published versions are never reused: pick a greater one or omit it"
            )
        return wanted
    candidate = timestamp_version(now)
    if newest is not None and candidate <= newest:
        return Version(newest.major, newest.minor, newest.patch + 1)
    return candidate


def newest(versions: Iterable[str]) -> str | None:
    parsed = sorted(Version.parse(v) for v in versions)
    return str(parsed[-1]) if parsed else None
