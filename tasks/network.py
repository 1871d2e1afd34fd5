"""EC2 through boto3 with the environment's AwsCredentials: which hosts to
upgrade, and the temporary tcp/22 ingress rule for the deployer."""
from __future__ import annotations

import socket
from datetime import datetime, timedelta, timezone

from botocore.exceptions import ClientError
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from blocks.environment import DeployEnvironment
from hotdeploy import ingress
from hotdeploy.ingress import Rule

from . import aws
from .remote import Host

EC2_RETRIES = dict(retries=3, retry_delay_seconds=[1, 3, 8], cache_policy=NO_CACHE)


class NoHosts(LookupError):
    pass


def _ec2(env: DeployEnvironment):
    return aws.client(env.aws_credentials, "ec2")


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


def _permissions(env: DeployEnvironment) -> list[dict]:
    [group] = _ec2(env).describe_security_groups(GroupIds=[env.security_group_id])["SecurityGroups"]
    return group.get("IpPermissions", [])


@task(cache_policy=NO_CACHE)
def deployer_cidr(env: DeployEnvironment, first_host: Host) -> str:
    """The environment's CIDR, or the local address the kernel would use to
    reach the first host (right when the deployer routes to the hosts directly;
    behind NAT set deployer_cidr explicitly)."""
    if env.deployer_cidr:
        return ingress.check_cidr(env.deployer_cidr)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((first_host.address, env.ssh_port))  # UDP connect sends nothing
        return f"{s.getsockname()[0]}/32"


@task(**EC2_RETRIES)
def sweep_expired_ingress(env: DeployEnvironment, now: datetime | None = None) -> list[Rule]:
    """Revoke our rules whose expiry passed (a deployer killed before its finally)."""
    log = get_run_logger()
    stale = ingress.expired(_permissions(env), env.ssh_port, now or datetime.now(timezone.utc))
    for rule in stale:
        _revoke(env, rule)
        log.warning("revoked expired ingress %s on tcp/%d (%s)", rule.cidr, rule.port, rule.description)
    return stale


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
def authorize_ingress(env: DeployEnvironment, cidr: str, run_id: str) -> Rule | None:
    """Open tcp/22 from CIDR, unless a rule already does (then it is not ours
    to revoke and None is returned)."""
    log = get_run_logger()
    if ingress.covered(_permissions(env), env.ssh_port, cidr):
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
        # A retry after a lost response finds its own rule already there.
        if e.response.get("Error", {}).get("Code") != "InvalidPermission.Duplicate":
            raise
    log.info("authorized tcp/%d from %s on %s (%s)", rule.port, cidr, env.security_group_id, rule.description)
    return rule


@task(**EC2_RETRIES)
def revoke_ingress(env: DeployEnvironment, rule: Rule | None) -> None:
    if rule is None:
        return
    _revoke(env, rule)
    get_run_logger().info("revoked tcp/%d from %s on %s", rule.port, rule.cidr, env.security_group_id)
