"""A deploy environment (staging, production, rehearsal) as one typed block."""
from __future__ import annotations

from typing import Literal

from prefect.blocks.core import Block
from prefect_aws import AwsCredentials
from pydantic import Field, SecretStr, field_validator, model_validator


class DeployEnvironment(Block):
    """Where and how to hot-upgrade one environment's hosts.

    Hosts are the EC2 instances tagged `Environment`/`Role` with these values
    and in state running; SSH reaches them on the `address` kind.
    """

    _block_type_name = "hotdeploy Environment"
    _block_type_slug = "hotdeploy-environment"
    _description = "Hosts (by EC2 tags), SSH access, security group and runtime config of one environment."

    environment_tag: str = Field(description="value of the instances' Environment tag, e.g. staging")
    role_tag: str = Field(default="web", description="value of the instances' Role tag")
    aws_credentials: AwsCredentials = Field(description="EC2 access: describe instances, authorize/revoke on the group")
    security_group_id: str = Field(description="group whose tcp/22 ingress is opened for the deployer")
    address: Literal["private", "public"] = Field(default="private", description="which instance address to SSH to")
    deployer_cidr: str | None = Field(default=None, description="source of the SSH rule; None: the local address towards the first host")
    ssh_user: str = "deploy"
    ssh_port: int = 22
    ssh_private_key: SecretStr = Field(description="the deployer's private key (OpenSSH/PEM)")
    known_hosts: str = Field(description="known_hosts lines for every host; unknown keys are refused")
    release_root: str = Field(default="/srv/app", description="where the release lives on each host")
    app_port: int = 8080
    health_path: str | None = Field(default="/api/public/version", description="what the gate GETs on app_port "
                                                                             "from inside the node; empty: an app "
                                                                             "with no HTTP endpoint, the node-only "
                                                                             "gate (the release runs, its "
                                                                             "supervision tree is up, no error event)")
    health_status: int = Field(default=200, description="HTTP status the gate expects from health_path")
    health_match: Literal["exact", "json", "regex"] = Field(
        default="exact", description="how health_body is matched: exact (the whole trimmed body), json (health_body "
                                     "names a field, dotted for nested objects, whose value is the version), regex "
                                     "(health_body is a regular expression that must match the body)")
    health_body: str = Field(default="{version}", description="body the gate expects ({version}: the release "
                                                              "version; empty: any body)")
    health_timeout_seconds: float = 30.0
    health_soak_seconds: float = Field(default=2.0, ge=0, description="after the version answers, how long no process may crash")
    runtime_config: SecretStr = Field(default=SecretStr("[]."), description="runtime.config written beside the release (Erlang terms)")
    service_environment: SecretStr = Field(
        default=SecretStr(""), description="the service's OS environment, KEY=value lines (what config/runtime.exs "
                                           "or sys.config.src read with System.get_env / os:getenv): written 0600 "
                                           "beside the release, read by its systemd unit and by the daemon start; "
                                           "in force from the node's next start (provision, a restart deploy)")
    max_parallel: int = Field(default=8, ge=1, le=256, description="hosts upgraded at once, within a wave")
    canary: int = Field(default=1, ge=0, description="hosts upgraded first, alone, before any wave")
    wave_size: str = Field(default="25%", pattern=r"^[1-9][0-9]{0,5}%?$",
                           description="hosts per wave after the canary: a number, or a percentage of the fleet")
    max_failed_hosts: int = Field(default=0, ge=0, description="once more hosts failed (or went back), no new "
                                                               "host starts; the rest are reported not started")
    shard_size: int = Field(default=0, ge=0, description="a wave bigger than this runs as shards of this many "
                                                         "hosts, each a run of the deploy-shard/<environment> "
                                                         "deployment on the pool, so several workers share a big "
                                                         "fleet (their addresses within deployer_cidr); 0: every "
                                                         "host from the deploy's own run")
    lock_timeout_seconds: float = Field(default=1800, ge=0, description="how long a run waits for another deploy "
                                                                        "on this environment to finish")
    connect_timeout_seconds: float = 10.0
    command_timeout_seconds: float = 120.0
    drain_function: str | None = Field(
        default=None, pattern=r"^[a-z][A-Za-z0-9_@]*:[a-z][A-Za-z0-9_@]*$",
        description="before a restart: module:function called in the node (no arguments), e.g. my_app:drain")
    drain_path: str | None = Field(default=None, description="before a restart (when no drain_function): a path "
                                                             "GET on app_port, e.g. /admin/drain")
    drain_seconds: float = Field(default=0.0, ge=0, description="after the drain, how long to wait before the node "
                                                               "is stopped (connections finish, balancers notice)")
    stop_timeout_seconds: float = Field(default=30.0, gt=0, description="a node that has not stopped this long "
                                                                        "after its stop is killed")
    probe_path: str | None = Field(default=None, description="what each soak probes from inside the node, to "
                                                             "compare canary and baseline hosts, e.g. / (empty: "
                                                             "health_path)")
    canary_latency_ratio: float = Field(default=2.0, gt=1, description="a canary's median latency may be at most "
                                                                       "this times the baseline's (or "
                                                                       "canary_latency_slack_ms above it); its p99 "
                                                                       "twice this, with 10x the slack, judged "
                                                                       "with 300 probes a side or more")
    canary_latency_slack_ms: float = Field(default=5.0, ge=0, description="latency differences below this are "
                                                                          "noise")
    canary_error_rate_diff: float = Field(default=0.02, ge=0, description="a canary's share of failed probes may "
                                                                          "be at most this above the baseline's")
    canary_process_growth: float = Field(default=0.25, ge=0, description="a canary's process count may grow at "
                                                                         "most this much more than the baseline's")
    canary_min_probes: int = Field(default=30, ge=1, description="fewer probes on either side: inconclusive (at "
                                   "30, a release failing one request in ten fails at least one probe 95 % of the time)")
    canary_probe_ms: int = Field(default=20, ge=5, description="how often the canary window probes each host from "
                                 "inside the node (a soak probes every 100 ms): 20 ms gives about 100 probes a host "
                                 "in a 2 s window")
    canary_inconclusive: Literal["continue", "stop", "ask"] = Field(
        default="continue", description="when the canary verdict is inconclusive: go on, stop (take the canary "
                                        "back), or ask for an approval")
    approval: bool = Field(default=False, description="after the canary, wait for an approval in the UI (approve "
                                                      "or take back) before the other waves")
    approval_timeout_seconds: float = Field(default=3600, gt=0, le=82800,
                                            description="an approval not given by then takes the canary back "
                                                        "(at most 23 h: the lock a suspended run keeps is a "
                                                        "Prefect lease, a day at most)")
    approval_hold_seconds: float = Field(default=300, ge=0,
                                         description="an approval waits this long in the run's process; past it "
                                                     "a run from a deployment is suspended (its process ends, its "
                                                     "worker slot is free, the environment stays locked) and "
                                                     "starts again on its pool when answered")
    commit_after_seconds: float = Field(default=0, ge=0, description="keep every host's new release installed "
                                                                     "but not permanent this long, watching; a node "
                                                                     "that restarts meanwhile takes the whole "
                                                                     "environment back (0: permanent at once)")
    install_timeout_seconds: float | None = Field(
        default=None, gt=0, description="how long release_handler's install may take before the node program "
                                        "goes back (it waits for an install that overran before it does); "
                                        "empty: command_timeout_seconds")
    ingress_ttl_minutes: int = Field(default=30, ge=1, description="expiry written on our SSH rule")
    requires_rehearsal: bool = Field(default=False, description="refuse versions that did not pass rehearsal")
    distribution: Literal["loopback", "cluster"] = Field(
        default="loopback", description="loopback: each node's Erlang distribution and epmd listen on 127.0.0.1 "
                                        "only (a release whose vm.args says otherwise is refused); cluster: the "
                                        "nodes form a cluster over the hosts' network (their shared cookie is "
                                        "the operator's, in each host's ~/.erlang.cookie)")

    @field_validator("service_environment")
    @classmethod
    def _service_environment(cls, value: SecretStr) -> SecretStr:
        from hotdeploy.commands import parse_service_environment
        parse_service_environment(value.get_secret_value())    # names a bad line by number, never its value
        return value

    @model_validator(mode="after")
    def _shards_need_a_cidr(self) -> "DeployEnvironment":
        if self.shard_size and not self.deployer_cidr:
            raise ValueError("shard_size needs deployer_cidr: the deploy opens one SSH rule, and the shards' "
                             "workers connect from their own addresses (e.g. the workers' subnet, 10.0.4.0/24)")
        return self

    @field_validator("wave_size")
    @classmethod
    def _wave_size(cls, value: str) -> str:
        from hotdeploy.params import parse_wave_size
        parse_wave_size(value)
        return value
