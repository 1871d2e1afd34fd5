"""Temporary SSH ingress rules, recognisable and expiring (pure).

The seed's `trap` revoked the rule unless the CI box was killed. Here each
rule carries its flow run and expiry in its description: a run recognises
its own rule (a retried authorize), and a later run holding the
environment's lock (or the sweep-ingress flow) revokes what a killed run left
open. The expiry tells an operator how long the rule was meant to live.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import datetime, timezone

PREFIX = "hotdeploy"
_DESC = re.compile(rf"{PREFIX} run=(?P<run>[0-9A-Za-z-]+) expires=(?P<exp>\d{{8}}T\d{{6}}Z)")


def description(run_id: str, expires_at: datetime) -> str:
    return f"{PREFIX} run={run_id} expires={expires_at.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}"


def parse_description(text: str | None) -> tuple[str, datetime] | None:
    m = _DESC.fullmatch(text or "")
    if not m:
        return None
    exp = datetime.strptime(m.group("exp"), "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    return m.group("run"), exp


@dataclass(frozen=True)
class Rule:
    cidr: str
    port: int
    description: str | None = None


def rules_on_port(permissions: list[dict], port: int) -> list[Rule]:
    """The IPv4 ranges allowed to PORT by a security group's IpPermissions."""
    out = []
    for p in permissions:
        if p.get("IpProtocol") not in ("tcp", "-1"):
            continue
        if p.get("IpProtocol") == "tcp" and not (p.get("FromPort", 0) <= port <= p.get("ToPort", 65535)):
            continue
        out += [Rule(r["CidrIp"], port, r.get("Description")) for r in p.get("IpRanges", [])]
    return out


def run_of(rule: Rule) -> str | None:
    """The flow run a rule of ours was made for; None for anyone else's rule."""
    parsed = parse_description(rule.description)
    return parsed[0] if parsed else None


def of_run(permissions: list[dict], port: int, run_id: str) -> list[Rule]:
    """The rules RUN_ID made (a retried authorize finds its own here)."""
    return [r for r in rules_on_port(permissions, port) if run_of(r) == run_id]


def of_other_runs(permissions: list[dict], port: int, run_id: str) -> list[Rule]:
    """Our rules made by other runs: under the environment's lock, their
    runs are over (killed before their revoke), whatever their expiry."""
    return [r for r in rules_on_port(permissions, port) if run_of(r) not in (None, run_id)]


def still_ours(permissions: list[dict], rule: Rule) -> bool:
    """Whether RULE is still there with our description: if someone changed
    its description (they want it kept), it is theirs now, not ours to revoke."""
    return any(r.cidr == rule.cidr and r.description == rule.description
               for r in rules_on_port(permissions, rule.port))


def covered(permissions: list[dict], port: int, cidr: str) -> bool:
    """Whether an existing rule already lets CIDR reach PORT (then we add none)."""
    net = ipaddress.ip_network(cidr, strict=False)
    return any(net.subnet_of(ipaddress.ip_network(r.cidr, strict=False))
               for r in rules_on_port(permissions, port))


def check_cidr(cidr: str) -> str:
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        raise ValueError(f"invalid deployer CIDR {cidr!r}: expected e.g. 203.0.113.7/32") from None
    if net.version != 4:
        raise ValueError(f"deployer CIDR {cidr} is not IPv4")
    return str(net)


def left_open(rule: Rule, group_id: str, why: str) -> str:
    """What to tell when RULE could not be revoked: which rule, until when
    it was meant to live, and who revokes it."""
    parsed = parse_description(rule.description)
    until = f"until {parsed[1]:%Y-%m-%d %H:%M} UTC (its expiry)" if parsed else "with no expiry"
    return (f"the SSH rule tcp/{rule.port} from {rule.cidr} on {group_id} could not be revoked ({why}): it stays "
            f"open {until}, unless the next run on this environment or the sweep-ingress flow revokes it first")
