"""Shards of a big wave (pure parts): which waves are split, where a shard's
outcomes are left, how they come back, and the block rule that goes with it."""
import pytest

from hotdeploy.layout import shard_key
from hotdeploy.rollout import plan_shards
from tasks.hosts import HostOutcome
from tasks.remote import Host
from tasks.shards import outcomes_of

RUN = "0b8c7a4e-8f53-4bde-a0f7-6a1f7d1b2c3d"


def test_a_wave_bigger_than_a_shard_is_split_in_order_and_the_rest_run_from_the_deploy():
    assert plan_shards(list(range(1, 6)), 2, judged=False) == [[1, 2], [3, 4], [5]]
    assert plan_shards([0, 1], 2, judged=False) is None, "no bigger than a shard"
    assert plan_shards(list(range(10)), 0, judged=False) is None, "0: off"
    assert plan_shards(list(range(10)), 2, judged=True) is None, "the judged canary is sampled from the deploy"


def test_a_shards_outcomes_have_a_key_of_their_run_and_label_only():
    assert shard_key("example_app", RUN, "w2-s13") == f"example_app/runs/{RUN}/w2-s13.json"
    assert shard_key("example_app", "local", "w1-s1") == "example_app/runs/local/w1-s1.json"
    for run, shard in [(RUN, "../x"), (RUN, "w2-s1/../../VERSION"), ("../../VERSION", "w1-s1"), (RUN, "")]:
        with pytest.raises(ValueError, match="invalid"):
            shard_key("example_app", run, shard)


def test_each_host_gets_its_row_back_and_a_host_without_one_failed_with_the_shards_end():
    hosts = [Host("i-1", "h1", "198.18.0.11"), Host("i-2", "h2", "198.18.0.12")]
    row = HostOutcome("h1", "198.18.0.11", "v1", "v2", result="upgraded", pid_before=7, pid_after=7,
                      seconds={"on node": 1.5}).as_row()
    got = outcomes_of(hosts, [{**row, "a field of a newer version": 1}], "w2-s1", "run x ended crashed")
    assert (got[0].result, got[0].pid_after, got[0].seconds, got[0].shard) == ("upgraded", 7, {"on node": 1.5}, "w2-s1")
    assert (got[1].host, got[1].result, got[1].detail, got[1].ok) == ("h2", "failed", "run x ended crashed", False)
    assert [o.result for o in outcomes_of(hosts, None, "w2-s1", "lost")] == ["failed", "failed"]


def test_shards_need_the_workers_addresses_in_the_rule():
    from prefect_aws import AwsCredentials

    from blocks.environment import DeployEnvironment
    fields = dict(environment_tag="prod", aws_credentials=AwsCredentials(), security_group_id="sg-1",
                  ssh_private_key="k", known_hosts="h", shard_size=50)
    with pytest.raises(ValueError, match="shard_size needs deployer_cidr"):
        DeployEnvironment(**fields)
    assert DeployEnvironment(**fields, deployer_cidr="10.0.4.0/24").shard_size == 50
