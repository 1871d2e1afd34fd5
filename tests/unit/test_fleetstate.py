from hotdeploy.fleetstate import choose_predecessors, record_of, versions_in_use


def row(host, running, permanent=None, result="upgraded"):
    return {"host": host, "address": f"10.0.0.{host[-1]}", "running": running,
            "permanent": permanent or running, "result": result}


def test_record_remembers_what_ran_before_and_keeps_unread_hosts():
    first = record_of("shop", "prod", "hot-deploy", "run-1", "t1", [row("i-1", "1.0.0"), row("i-2", "1.0.0")],
                      None, whole_fleet=True)
    second = record_of("shop", "prod", "hot-deploy", "run-2", "t2",
                       [row("i-1", "1.1.0"), row("i-2", None, result="failed")], first, whole_fleet=True)
    h1, h2 = second["hosts"]
    assert (h1["running"], h1["previous"], h1["at"], h1["flow_run"]) == ("1.1.0", "1.0.0", "t2", "run-2")
    assert (h2["running"], h2["result"], h2["at"]) == ("1.0.0", "failed", "t1")
    assert h2["note"] == "not read by hot-deploy at t2; versions as of t1"
    # the same version again keeps the older "previous"
    third = record_of("shop", "prod", "status", "run-3", "t3", [row("i-1", "1.1.0", result="answering")],
                      second, whole_fleet=False)
    assert third["hosts"][0]["previous"] == "1.0.0" and len(third["hosts"]) == 2


def test_a_whole_fleet_run_drops_hosts_ec2_no_longer_lists():
    first = record_of("shop", "prod", "status", "r1", "t1", [row("i-1", "1.0.0"), row("i-2", "1.0.0")], None, True)
    assert [h["host"] for h in record_of("shop", "prod", "status", "r2", "t2", [row("i-2", "1.0.0")], first,
                                         True)["hosts"]] == ["i-2"]


def test_versions_in_use_ignores_garbage():
    records = [{"hosts": [row("i-1", "1.0.0", "0.9.0"), row("i-2", "1.2.3;rm -rf /"), {"host": "x"}, "junk"]},
               {"hosts": [row("i-3", "1.1.0")]}]
    assert versions_in_use(records) == ["0.9.0", "1.0.0", "1.1.0"]


def test_predecessors_follow_the_fleet_within_a_cap():
    published = ["1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0"]
    chosen, left = choose_predecessors(["1.0.0", "1.2.0", "1.3.0", "9.9.9"], "1.4.0", [], published, None, 3)
    assert chosen == ["1.2.0", "1.3.0", "1.4.0"]
    assert left == {"9.9.9": "not a published version in the store",
                    "1.0.0": "beyond the newest 3 (ask for it with upgrade_from)"}
    chosen, _ = choose_predecessors(["1.2.0"], "1.4.0", ["1.0.0"], published, "1.3.0", 1)
    assert chosen == ["1.0.0", "1.2.0"]     # requested always, 1.4.0 is not older than 1.3.0
    assert choose_predecessors([], None, [], [], None, 5) == ([], {})


def test_an_environment_record_that_is_not_a_json_object_reads_as_empty():
    from tasks.store import environment_record
    assert environment_record(None) == {} and environment_record("") == {}
    assert environment_record("not json") == {} and environment_record("[1, 2]") == {}
    assert environment_record('{"hosts": []}') == {"hosts": []}
