"""EC2 through boto3 with the environment's AwsCredentials: which hosts to
upgrade, and the temporary tcp/22 ingress rule for the deployer."""
from __future__ import annotations

import socket
from datetime import datetime, timedelta, timezone

from botocore.exceptions import ClientError
from prefect import get_run_logger, task

from blocks.environment import DeployEnvironment
from hotdeploy import ingress
from hotdeploy.errors import Outage, Refusal
from hotdeploy.ingress import Rule

from . import aws
from .remote import Host
from .retry import retrying

EC2_RETRIES = retrying(delays=(1, 3, 8))


class NoHosts(Refusal, LookupError):
    pass


class Ec2Unreachable(Outage, RuntimeError):
    pass


def _ec2(env: DeployEnvironment):
    return aws.client(env.aws_credentials, "ec2")


_ec2_call = aws.naming(Ec2Unreachable, lambda env: f"EC2 ({aws.endpoint(env.aws_credentials)})")


def hosts_from_reservations(reservations: list[dict], address: str) -> list[Host]:
    """Instances as hosts, by name; the address kind is the environment's choice."""
    key = "PrivateIpAddress" if address == "private" else "PublicIpAddress"
    hosts = []
    for r in reservations:
        for i in r.get("Instances", []):
            tags = {t["Key"]: t["Value"] for t in i.get("Tags", [])}
            if i.get(key):
                hosts.append(Host(i["InstanceId"], tags.get("Name", i["InstanceId"]), i[key]))
    return sorted(hosts, key=lambda h: h.name)


@task(**EC2_RETRIES)
@_ec2_call
def discover_hosts(env: DeployEnvironment) -> list[Host]:
    filters = [{"Name": "tag:Environment", "Values": [env.environment_tag]},
               {"Name": "tag:Role", "Values": [env.role_tag]},
               {"Name": "instance-state-name", "Values": ["running"]}]
    pages = _ec2(env).get_paginator("describe_instances").paginate(Filters=filters)
    hosts = hosts_from_reservations([r for p in pages for r in p["Reservations"]], env.address)
    if not hosts:
        raise NoHosts(f"no running instance is tagged Environment={env.environment_tag}, Role={env.role_tag} "
                      f"(with a {env.address} address): nothing to deploy to. Check the environment's tags")
    get_run_logger().info("hosts: %s", ", ".join(map(str, hosts)))
    return hosts


# Hosts read before the environment's lock are used if the lock was free
# (waited under this); after a longer wait the fleet may have changed.
READ_AHEAD_FRESH_S = 5.0


def read_ahead_holds(waited_s: float) -> bool:
    """Whether hosts discovered before a lock wait of WAITED_S seconds are
    still the fleet to use (pure)."""
    return waited_s < READ_AHEAD_FRESH_S


class FleetReadAhead:
    """discover_hosts started beside the flow's store read (both only read:
    a refusal between them changes nothing), saving one EC2 round trip of
    the fixed cost; hosts() after the lock, read again if the lock made us
    wait long enough for the fleet to change."""

    def __init__(self, env: DeployEnvironment):
        self.env = env
        self.future = discover_hosts.submit(env)

    def hosts(self, waited_s: float) -> list[Host]:
        early = self.future.result()
        if read_ahead_holds(waited_s):
            return early
        get_run_logger().info("waited %.1f s for the lock: reading the hosts again", waited_s)
        return discover_hosts(self.env)


def _permissions(env: DeployEnvironment) -> list[dict]:
    [group] = _ec2(env).describe_security_groups(GroupIds=[env.security_group_id])["SecurityGroups"]
    return group.get("IpPermissions", [])


def deployer_cidr(env: DeployEnvironment, first_host: Host) -> str:
    """The environment's CIDR, or the local address the kernel would use to
    reach the first host (right when the deployer routes to the hosts directly;
    behind NAT set deployer_cidr explicitly). No network call, so no task run
    of its own (each costs the server)."""
    if env.deployer_cidr:
        return ingress.check_cidr(env.deployer_cidr)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((first_host.address, env.ssh_port))  # UDP connect sends nothing
        return f"{s.getsockname()[0]}/32"


def _revoke(env: DeployEnvironment, rule: Rule) -> None:
    try:
        _ec2(env).revoke_security_group_ingress(
            GroupId=env.security_group_id,
            IpPermissions=[{"IpProtocol": "tcp", "FromPort": rule.port, "ToPort": rule.port,
                            "IpRanges": [{"CidrIp": rule.cidr}]}])
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") != "InvalidPermission.NotFound":
            raise


@task(**EC2_RETRIES)
@_ec2_call
def authorize_ingress(env: DeployEnvironment, cidr: str, run_id: str) -> Rule | None:
    """Open tcp/22 from CIDR for RUN_ID, first revoking the rules of dead
    runs (as revoke_rules_of_dead_runs: call it under the environment's
    lock) from the same read. A rule RUN_ID made already (this task retried
    after a lost answer) is returned as ours; a rule of anyone else that
    already allows CIDR means we add none (None: nothing to revoke)."""
    log = get_run_logger()
    permissions = _permissions(env)
    if _revoke_dead(env, permissions, run_id):
        permissions = _permissions(env)
    own = ingress.of_run(permissions, env.ssh_port, run_id)
    if own:
        log.info("tcp/%d from %s: our own rule is there already (%s)", env.ssh_port, own[0].cidr, own[0].description)
        return own[0]
    if ingress.covered(permissions, env.ssh_port, cidr):
        log.info("tcp/%d from %s is already allowed by an existing rule; adding none", env.ssh_port, cidr)
        return None
    expires = datetime.now(timezone.utc) + timedelta(minutes=env.ingress_ttl_minutes)
    rule = Rule(cidr, env.ssh_port, ingress.description(run_id, expires))
    try:
        _ec2(env).authorize_security_group_ingress(
            GroupId=env.security_group_id,
            IpPermissions=[{"IpProtocol": "tcp", "FromPort": rule.port, "ToPort": rule.port,
                            "IpRanges": [{"CidrIp": cidr, "Description": rule.description}]}])
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") != "InvalidPermission.Duplicate":
            raise
        # Someone else's identical rule appeared between our read and our add: theirs, never revoked by us.
        log.info("tcp/%d from %s was added by someone else meanwhile; adding none", env.ssh_port, cidr)
        return None
    log.info("authorized tcp/%d from %s on %s (%s)", rule.port, cidr, env.security_group_id, rule.description)
    return rule


@task(**EC2_RETRIES)
@_ec2_call
def revoke_ingress(env: DeployEnvironment, rule: Rule | None) -> None:
    """Revoke RULE if it is still ours (its description unchanged)."""
    if rule is None:
        return
    if not ingress.still_ours(_permissions(env), rule):
        get_run_logger().warning("tcp/%d from %s is no longer our rule (removed or relabelled by someone): "
                                 "left as it is", rule.port, rule.cidr)
        return
    _revoke(env, rule)
    get_run_logger().info("revoked tcp/%d from %s on %s", rule.port, rule.cidr, env.security_group_id)


@task(**EC2_RETRIES)
@_ec2_call
def revoke_rules_of_dead_runs(env: DeployEnvironment, run_id: str) -> list[Rule]:
    """Under the environment's lock, every rule of ours made by another run
    belongs to a run that is over (killed before its revoke): revoke them,
    except those of the runs holding the lock around this one (a rehearsal's
    probe rule, while its deploys run)."""
    return _revoke_dead(env, _permissions(env), run_id)


def _revoke_dead(env: DeployEnvironment, permissions: list[dict], run_id: str) -> list[Rule]:
    from .lock import lock_holders
    alive = lock_holders() | {run_id}
    dead = [r for r in ingress.of_other_runs(permissions, env.ssh_port, run_id) if ingress.run_of(r) not in alive]
    for rule in dead:
        _revoke(env, rule)
        get_run_logger().warning("revoked tcp/%d from %s left by run %s (killed before its revoke?)", rule.port,
                                 rule.cidr, ingress.run_of(rule))
    return dead


@_ec2_call
def revoke_rules_of_run(env: DeployEnvironment, run_id: str) -> list[Rule]:
    """Every rule RUN_ID made (for the cancellation and crash hooks, which
    run outside any flow)."""
    rules = ingress.of_run(_permissions(env), env.ssh_port, run_id)
    for rule in rules:
        _revoke(env, rule)
    return rules
