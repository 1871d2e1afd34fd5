"""Security-group rules as an nftables table (pure), applied in each host."""
from __future__ import annotations

from hotdeploy.ingress import rules_on_port

TABLE = "hotdeploy_sg"


def ruleset(permissions: list[dict], guarded_ports: tuple[int, ...] = (22,)) -> str:
    """An `nft -f` script replacing our table: what the group allows on the
    guarded ports is accepted, the rest of those ports is dropped. Other ports
    stay open (the app port is public in the test fleet). Established
    connections survive a revoke, as with EC2's connection tracking."""
    lines = [f"table inet {TABLE}", f"delete table inet {TABLE}", f"table inet {TABLE} {{",
             "  chain input {", "    type filter hook input priority 0; policy accept;",
             "    ct state established,related accept", "    iif lo accept"]
    for port in guarded_ports:
        for rule in sorted({r.cidr for r in rules_on_port(permissions, port)}):
            lines.append(f"    ip saddr {rule} tcp dport {port} accept")
        lines.append(f"    tcp dport {port} drop")
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"
