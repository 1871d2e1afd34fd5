from hotdeploy.report import failing_tests, ship_summary_markdown

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
