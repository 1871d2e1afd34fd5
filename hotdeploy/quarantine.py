"""Quarantine: a version that failed a canary, a gate, a stability window or
an approval is recorded in the store with why and by which run; no deploy,
rehearsal or `latest` takes it unless told to, and no rollback goes to it
(pure)."""
from __future__ import annotations

from .errors import Refusal


class Quarantined(Refusal, PermissionError):
    pass


def record(reason: str, environment: str, flow_run: str, at: str, figures: dict | None = None) -> dict:
    return {"reason": reason, "environment": environment, "flow_run": flow_run, "at": at,
            "figures": figures or {}}


def quarantine_gate(app: str, version: str, record_: dict | None, override: bool) -> str:
    """A note for the summary, or raise Quarantined."""
    if not record_:
        return ""
    why = (f"{app} {version} is quarantined: {record_.get('reason', 'no reason recorded')} (on "
           f"{record_.get('environment')}, run {record_.get('flow_run')}, {record_.get('at')})")
    if override:
        return f"QUARANTINED, deployed with allow_quarantined: {why}"
    raise Quarantined(f"{why}. Nothing was done; fix it and release a new version, or pass "
                      "allow_quarantined=true to deploy it anyway")


# Steps whose failure says nothing about the version: the host's disk, its
# staging area, the record. A host that went back from one of them is not
# the release's fault, and a rerun once the disk is freed must be allowed.
HOST_STEPS = frozenset({"unpack", "permanent", "preflight", "record", "load", "stage"})


def reason_from_hosts(outcomes) -> str | None:
    """The first host that went back because the release failed there
    (install, gate, children), as one line; None if none did (unreachable
    hosts, a full disk: fix the host and run again)."""
    back = [o for o in outcomes if o.result == "rolled back" and o.step not in HOST_STEPS]
    return f"{back[0].host}: {back[0].detail}" if back else None
