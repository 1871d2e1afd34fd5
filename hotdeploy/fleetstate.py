"""What runs where: the environment record a fleet flow leaves in the store
(`<app>/environments/<env>.json`), and what the release flow takes from it
(pure).

Each host's entry says what its node answered the last time a flow reached
it: the release it runs, the permanent one, the one it ran before. A host a
run could not read keeps its last known versions, marked as such, so one
unreachable host never erases what we know.
"""
from __future__ import annotations

from typing import Iterable

from .versions import InvalidVersion, Version

RECORD_FORMAT = 1


def record_of(app: str, environment: str, flow: str, flow_run: str, at: str, seen: list[dict],
              before: dict | None, whole_fleet: bool) -> dict:
    """The new record after a run that saw SEEN (rows: host, address,
    running, permanent, result; running None when the run could not read
    it). WHOLE_FLEET: the run covered every host EC2 lists, so hosts missing
    from SEEN are gone; otherwise they keep their entries."""
    old = {h["host"]: h for h in (before or {}).get("hosts", []) if isinstance(h, dict) and "host" in h}
    hosts = {} if whole_fleet else dict(old)
    for row in seen:
        prior = old.get(row["host"], {})
        if row.get("running") is None:
            entry = {**prior, "host": row["host"], "address": row["address"], "result": row["result"],
                     "note": f"not read by {flow} at {at}" + (f"; versions as of {prior['at']}"
                                                             if prior.get("at") else "")}
            entry.setdefault("running", None)
            entry.setdefault("permanent", None)
        else:
            ran_before = prior.get("running")
            entry = {"host": row["host"], "address": row["address"], "running": row["running"],
                     "permanent": row.get("permanent"),
                     "previous": ran_before if ran_before not in (None, row["running"]) else prior.get("previous"),
                     "config": row.get("config") or prior.get("config"),
                     "result": row["result"], "at": at, "flow": flow, "flow_run": flow_run}
        hosts[row["host"]] = entry
    return {"format": RECORD_FORMAT, "app": app, "environment": environment, "updated_at": at,
            "updated_by": {"flow": flow, "flow_run": flow_run},
            "hosts": [hosts[k] for k in sorted(hosts)]}


def recorded_hosts(record: dict) -> dict[str, dict]:
    """Host name -> its entry in an environment record."""
    return {h["host"]: h for h in record.get("hosts", []) if isinstance(h, dict) and isinstance(h.get("host"), str)}


def _valid(vsn) -> str | None:
    try:
        return str(Version.parse(vsn))
    except InvalidVersion:
        return None


def versions_in_use(records: Iterable[dict]) -> list[str]:
    """Every version recorded as running or permanent on a host of any
    environment (values that are not versions are ignored), oldest first."""
    found = {v for r in records for h in r.get("hosts", []) if isinstance(h, dict)
             for v in (_valid(h.get("running")), _valid(h.get("permanent"))) if v}
    return sorted(found, key=Version.parse)


def choose_predecessors(in_use: list[str], pointer: str | None, requested: list[str], published: list[str],
                        new: str | None, cap: int) -> tuple[list[str], dict[str, str]]:
    """The versions a new release's relup goes up from and down to: what runs
    in any environment, the pointer's version and the REQUESTED ones, that
    are published and older than NEW (None: not known yet). The requested
    ones always; of the others, the newest CAP. Returns (chosen, left out
    -> why)."""
    left: dict[str, str] = {}
    wanted = {*in_use, *requested, *([pointer] if pointer else [])}
    ok = []
    for vsn in wanted:
        if vsn not in published:
            left[vsn] = "not a published version in the store"
        elif new is not None and Version.parse(vsn) >= Version.parse(new):
            left[vsn] = f"not older than {new}"
        else:
            ok.append(vsn)
    automatic = sorted((v for v in ok if v not in requested), key=Version.parse, reverse=True)
    for vsn in automatic[cap:]:
        left[vsn] = f"beyond the newest {cap} (ask for it with upgrade_from)"
    chosen = [v for v in ok if v in requested] + automatic[:cap]
    return sorted(chosen, key=Version.parse), left
