"""Temporary ingress rules, host discovery and the test fleet's firewall (pure)."""
from datetime import datetime, timedelta, timezone

import pytest

from hotdeploy import ingress
from localfleet.firewall import ruleset
from tasks.network import hosts_from_reservations

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def perms(*ranges, port=22):
    return [{"IpProtocol": "tcp", "FromPort": port, "ToPort": port,
             "IpRanges": [{"CidrIp": c, "Description": d} for c, d in ranges]}]


def test_description_round_trip():
    text = ingress.description("0b7e-42", NOW)
    assert text == "hotdeploy run=0b7e-42 expires=20261126T120000Z"
    assert ingress.parse_description(text) == ("0b7e-42", NOW)
    assert ingress.parse_description("office") is None


def test_only_our_rules_of_other_runs_are_swept_whatever_their_expiry():
    p = perms(("1.2.3.4/32", ingress.description("old", NOW - timedelta(minutes=1))),
              ("5.6.7.8/32", ingress.description("live", NOW + timedelta(minutes=10))),
              ("7.7.7.7/32", ingress.description("me", NOW + timedelta(minutes=10))),
              ("9.9.9.0/24", "office"))
    assert [r.cidr for r in ingress.of_other_runs(p, 22, "me")] == ["1.2.3.4/32", "5.6.7.8/32"]


def test_existing_rule_covers_the_deployer():
    assert ingress.covered(perms(("10.0.0.0/8", "vpn")), 22, "10.1.2.3/32")
    assert not ingress.covered(perms(("10.0.0.0/8", "vpn"), port=80), 22, "10.1.2.3/32")
    assert ingress.covered([{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}], 22, "1.2.3.4/32")


def test_cidr_validation():
    assert ingress.check_cidr("203.0.113.7") == "203.0.113.7/32"
    with pytest.raises(ValueError, match="invalid deployer CIDR"):
        ingress.check_cidr("203.0.113.7; true")


def test_hosts_by_address_kind_sorted_by_name():
    reservations = [{"Instances": [
        {"InstanceId": "i-2", "PrivateIpAddress": "10.0.0.2", "PublicIpAddress": "3.3.3.3",
         "Tags": [{"Key": "Name", "Value": "web-2"}]},
        {"InstanceId": "i-1", "PrivateIpAddress": "10.0.0.1", "Tags": [{"Key": "Name", "Value": "web-1"}]}]}]
    assert [(h.name, h.address) for h in hosts_from_reservations(reservations, "private")] == \
        [("web-1", "10.0.0.1"), ("web-2", "10.0.0.2")]
    assert [h.address for h in hosts_from_reservations(reservations, "public")] == ["3.3.3.3"]


def test_firewall_accepts_group_ranges_then_drops_ssh():
    script = ruleset(perms(("198.18.0.1/32", None)) + perms(("0.0.0.0/0", "app"), port=8080))
    body = script.splitlines()
    assert body.index("    ip saddr 198.18.0.1/32 tcp dport 22 accept") < body.index("    tcp dport 22 drop")
    assert "8080" not in script  # only ssh is guarded; the app port stays open
    assert "ip saddr" not in ruleset([])


def test_rules_by_run():
    from hotdeploy.ingress import Rule, description, of_other_runs, of_run, run_of, still_ours
    from datetime import datetime, timezone
    when = datetime(2026, 11, 26, 12, tzinfo=timezone.utc)
    mine, dead = description("run-a", when), description("run-b", when)
    perms = [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [
        {"CidrIp": "198.18.0.1/32", "Description": mine}, {"CidrIp": "203.0.113.7/32", "Description": dead},
        {"CidrIp": "192.0.2.0/24", "Description": "office bastion"}]}]
    assert run_of(Rule("x", 22, mine)) == "run-a" and run_of(Rule("x", 22, "office")) is None
    assert [r.cidr for r in of_run(perms, 22, "run-a")] == ["198.18.0.1/32"]
    assert [r.cidr for r in of_other_runs(perms, 22, "run-a")] == ["203.0.113.7/32"]
    assert still_ours(perms, Rule("198.18.0.1/32", 22, mine))
    assert not still_ours(perms, Rule("192.0.2.0/24", 22, mine)), "someone relabelled it: theirs now"
