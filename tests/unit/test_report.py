from hotdeploy.report import artifact_key, failing_tests, ship_summary_markdown

EUNIT = """Failures:

  1) example_app_broken_tests:greeting_is_polite_test/0: module 'example_app_broken_tests'
     Failure/Error: {error,{badmatch,undefined},
  2) shop_tests:total_test/0
Finished in 0.072 seconds
5 tests, 2 failures""".splitlines()


def test_failing_tests_from_eunit_and_exunit():
    assert failing_tests(EUNIT) == ["example_app_broken_tests:greeting_is_polite_test/0", "shop_tests:total_test/0"]
    assert failing_tests(["  1) test greets the world (ExampleTest)", "     test/example_test.exs:5"]) == \
        ["greets the world (ExampleTest)"]
    assert failing_tests(["  1) not a failure list"]) == []


def test_ship_summary_line_says_what_shipped_or_why_not():
    built = {"release": "shop", "version": "2026.1126.1", "git_commit": "abc", "upgrade_from": ["2026.1125.1"]}
    rows = [{"host": f"i-{n}", "from_version": "2026.1125.1", "to_version": "2026.1126.1", "result": r,
             "detail": ""} for n, r in enumerate(["upgraded", "upgraded", "already running"])]
    text, line = ship_summary_markdown(built, "staging", rows, {"release": "http://ui/runs/flow-run/1"}, None)
    assert line == "shipped shop 2026.1126.1 to staging: 1 already running, 2 upgraded"
    assert "http://ui/runs/flow-run/1" in text and "| i-2 |" in text
    _, line = ship_summary_markdown(built | {"reused": True}, "staging", rows[:1], {}, "1 of 1 host(s) did not finish")
    assert line == ("shop 2026.1126.1 (released already, not rebuilt) released; deploy to staging failed: "
                    "1 of 1 host(s) did not finish")


def test_hosts_that_ended_alike_share_a_closing_line():
    from types import SimpleNamespace as O

    from hotdeploy.report import outcome_lines
    ok = [O(host=f"h{i:02}", from_version="1", to_version="2", result="upgraded", detail="hot") for i in range(11)]
    bad = O(host="h99", from_version=None, to_version="2", result="failed", detail="install: disk full")
    lines = outcome_lines([ok[0], bad, *ok[1:]], names_shown=3)
    assert lines == ["11 hosts (h00, h01, h02 and 8 more): 1 -> 2: upgraded (hot)",
                     "h99: nothing -> 2: failed (install: disk full)"]
    assert outcome_lines(ok[:1]) == ["h00: 1 -> 2: upgraded (hot)"]
    assert outcome_lines(ok[:2], names_shown=2) == ["2 hosts (h00, h01): 1 -> 2: upgraded (hot)"]


def test_artifact_keys_are_what_prefect_takes_whatever_the_tag_holds():
    from prefect.artifacts import Artifact
    assert artifact_key("hot-deploy", "staging") == "hot-deploy-staging"
    assert artifact_key("hot-deploy", "progress", "Prod.EU_1") == "hot-deploy-progress-prod-eu-1"
    assert artifact_key("release", "example_app") == "release-example-app"
    for tag in ("prod eu", "team/app:blue", "a+b=c@d", "_edge_", "UPPER"):   # EC2 allows all of these
        key = artifact_key("hot-deploy", tag)
        assert Artifact(key=key, type="table", data=[]).key == key
