"""Run a local fleet until stopped: `python -m localfleet serve --moto-url URL`.

Creates SIZE namespace hosts, registers them as EC2 instances in moto (tags
Environment=ENVIRONMENT, Role=web), keeps their nftables in step with the
security group, writes what a DeployEnvironment needs to STATE (JSON), and
tears everything down on SIGTERM/SIGINT.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path

import boto3

from .ec2 import register
from .fleet import Fleet, GroupEnforcer, remove_bridge


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m localfleet")
    p.add_argument("command", choices=["serve"])
    p.add_argument("--name", default="demo")
    p.add_argument("--size", type=int, default=3)
    p.add_argument("--first", type=int, default=100, help="last octet of the first host's address")
    p.add_argument("--environment", default="staging")
    p.add_argument("--moto-url", required=True)
    p.add_argument("--state", required=True, help="where to write the fleet's description (JSON)")
    args = p.parse_args(argv)

    ec2 = boto3.client("ec2", endpoint_url=args.moto_url, region_name="us-east-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    fleet = Fleet(args.name, args.size, first=args.first)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    try:
        fleet.start()
        ec2_fleet = register(ec2, fleet.hosts, environment=args.environment)
        enforcer = GroupEnforcer(ec2, ec2_fleet.group_id, fleet.hosts)
        enforcer.start()
        Path(args.state).write_text(json.dumps({
            "environment": args.environment, "security_group_id": ec2_fleet.group_id,
            "deployer_key": str(fleet.deployer_key), "known_hosts": fleet.known_hosts(),
            "hosts": [{"name": h.name, "address": h.address, "netns": h.name} for h in fleet.hosts],
        }, indent=2))
        print(f"fleet {args.name}: {', '.join(h.address for h in fleet.hosts)} (group {ec2_fleet.group_id})",
              flush=True)
        done.wait()
        enforcer.stop()
    finally:
        fleet.stop()
        remove_bridge()
        Path(args.state).unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
