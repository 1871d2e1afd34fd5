from hotdeploy.appup import AppBuild, Module, appup_for, parse_modinfo, plan_appups
from hotdeploy.erlterm import consult

PREV = AppBuild("shop", "1.0.0", (
    Module("shop_app", "a1"), Module("shop_sup", "s1", supervisor=True),
    Module("shop_cart", "c1", code_change=True), Module("shop_web", "w1"),
    Module("shop_legacy", "l1"),
))
NEW = AppBuild("shop", "1.1.0", (
    Module("shop_app", "a1"), Module("shop_sup", "s2", supervisor=True),
    Module("shop_cart", "c2", code_change=True), Module("shop_web", "w2"),
    Module("shop_tax", "t1"),
))


def test_instructions_from_module_diff():
    appup = appup_for(PREV, NEW)
    assert appup.up == (
        "{add_module, shop_tax}",
        "{update, shop_cart, {advanced, []}, soft_purge, soft_purge, []}",
        "{update, shop_sup, supervisor}",
        "{load_module, shop_web, soft_purge, soft_purge, []}",
        "{delete_module, shop_legacy}",
    )
    assert appup.entries[0].down == (
        "{add_module, shop_legacy}",
        "{update, shop_cart, {advanced, []}, soft_purge, soft_purge, []}",
        "{update, shop_sup, supervisor}",
        "{load_module, shop_web, soft_purge, soft_purge, []}",
        "{delete_module, shop_tax}",
    )


def test_rendered_appup_is_a_valid_erlang_term():
    [(vsn, [(up_from, up)], [(down_to, down)])] = consult(appup_for(PREV, NEW).render())
    assert (vsn, up_from, down_to) == ("1.1.0", "1.0.0", "1.0.0")
    assert ("add_module", "shop_tax") in up and ("delete_module", "shop_tax") in down


def test_unchanged_module_gets_no_instruction():
    same = AppBuild("shop", "1.1.0", PREV.modules)
    assert appup_for(PREV, same).up == ()


def test_plan_skips_unchanged_apps_new_apps_and_keeps_a_shipped_appup_for_the_pair():
    other_prev, other_new = AppBuild("lib", "2.0.0", ()), AppBuild("lib", "2.0.0", ())
    added = AppBuild("fresh", "0.1.0", (Module("fresh", "f"),))
    plan = plan_appups([PREV, other_prev], [NEW, other_new, added])
    assert [a.app for a in plan.appups] == ["shop"]
    kept = plan_appups([PREV], [NEW], shipped={"shop": ("1.1.0", ("1.0.0",))})
    assert kept.appups == [] and kept.shipped == ["shop"]
    stale = plan_appups([PREV], [NEW], shipped={"shop": ("1.0.5", ("0.9.0",))})
    assert [a.app for a in stale.appups] == ["shop"]


def test_parse_modinfo():
    text = "\n".join([
        "erts\tnew\t13.1.5", "otp\tnew\t25", "app\tnew\tshop\t1.1.0\t.",
        "module\tnew\tshop\tshop_cart\tc2\tcode_change", "module\tnew\tshop\tshop_sup\ts2\tsupervisor",
        "erts\tprev\t13.1.5", "app\tprev\tshop\t1.0.0\t-", "module\tprev\tshop\tshop_cart\tc1\tcode_change",
        "appup\tshop\t1.1.0\t1.0.0,0.9.0",
    ])
    text = text.replace("\tprev\t", "\tprev:1.0.0\t").replace("1.0.0,0.9.0", "1.0.0\x1f0.9.0")
    r = parse_modinfo(text)
    assert r.erts == {"new": "13.1.5", "prev:1.0.0": "13.1.5"} and r.otp_release == "25"
    assert [a.vsn for a in r.previous["1.0.0"]] == ["1.0.0"]
    assert r.src_dirs == {"shop": "."}
    [new] = r.apps["new"]
    assert new.vsn == "1.1.0" and new.by_name()["shop_sup"].supervisor
    assert r.shipped == {"shop": ("1.1.0", ("1.0.0", "0.9.0"))}


OLDER = AppBuild("shop", "0.9.0", (
    Module("shop_app", "a1"), Module("shop_sup", "s1", supervisor=True),
    Module("shop_cart", "c0", code_change=True), Module("shop_web", "w2"),
    Module("shop_legacy", "l1"),
))


def test_one_appup_entry_per_older_version():
    plan = plan_appups({"1.0.0": [PREV], "0.9.0": [OLDER], "1.0.5": [PREV]}, [NEW])
    [appup] = plan.appups
    assert appup.up_from == ["0.9.0", "1.0.0"]          # two releases with the same app vsn: one entry
    older, prev = appup.entries
    assert "{load_module, shop_web, soft_purge, soft_purge, []}" not in older.up   # same code as NEW
    assert "{load_module, shop_web, soft_purge, soft_purge, []}" in prev.up
    [(vsn, ups, downs)] = consult(appup.render())
    assert vsn == "1.1.0" and [u[0] for u in ups] == [d[0] for d in downs] == ["0.9.0", "1.0.0"]


def test_a_shipped_appup_is_kept_when_its_patterns_cover_every_older_version():
    new = [NEW]
    both = {"1.0.0": [PREV], "0.9.0": [OLDER]}
    assert plan_appups(both, new, {"shop": ("1.1.0", ("1.0.0", "0.9.0"))}).shipped == ["shop"]
    assert plan_appups(both, new, {"shop": ("1.1.0", ("re:(0\\.9|1\\.0)\\.0",))}).shipped == ["shop"]
    partial = plan_appups(both, new, {"shop": ("1.1.0", ("re:1\\..*",))})
    assert partial.shipped == [] and partial.appups[0].up_from == ["0.9.0", "1.0.0"]
    assert plan_appups(both, new, {"shop": ("1.1.0", ("re:0.9",))}).shipped == []   # must match all of it
    assert plan_appups(both, new, {"shop": ("1.1.0", ("re:(",))}).shipped == []     # not a regex: not a match


def test_elixir_module_names_are_quoted_atoms():
    from hotdeploy.appup import atom
    assert atom("example_app_web") == "example_app_web"
    assert atom("Elixir.ExampleEx.Counter") == "'Elixir.ExampleEx.Counter'"
    assert atom("it's") == "'it\\'s'"


def _sup(md5: str, children, name="my_sup", why="") -> Module:
    from hotdeploy.appup import Supervision
    return Module("my_sup", md5, supervisor=True,
                  supervision=Supervision(name, tuple(children) if children is not None else None, why=why))


def test_a_supervisor_child_that_comes_starts_after_the_update_and_goes_first_on_the_way_down():
    old = AppBuild("app", "1", (_sup("a", ["counter"]),))
    new = AppBuild("app", "2", (_sup("b", ["counter", "ticker"]), Module("ticker", "t")))
    entry = plan_appups([old], [new]).appups[0].entries[0]
    assert entry.up == ("{add_module, ticker}", "{update, my_sup, supervisor}",
                        "{apply, {supervisor, restart_child, [my_sup, ticker]}}")
    assert entry.down == ("{apply, {supervisor, terminate_child, [my_sup, ticker]}}",
                          "{apply, {supervisor, delete_child, [my_sup, ticker]}}",
                          "{update, my_sup, supervisor}", "{delete_module, ticker}")
    assert entry.notes == ()


def test_a_supervisor_child_that_goes_is_stopped_before_its_module_goes_and_comes_back_going_down():
    old = AppBuild("app", "1", (_sup("a", ["counter", "{ticker,1}"]), Module("ticker", "t")))
    new = AppBuild("app", "2", (_sup("b", ["counter"]),))
    entry = plan_appups([old], [new]).appups[0].entries[0]
    assert entry.up == ("{apply, {supervisor, terminate_child, [my_sup, {ticker,1}]}}",
                        "{apply, {supervisor, delete_child, [my_sup, {ticker,1}]}}",
                        "{update, my_sup, supervisor}", "{delete_module, ticker}")
    assert entry.down == ("{add_module, ticker}", "{update, my_sup, supervisor}",
                          "{apply, {supervisor, restart_child, [my_sup, {ticker,1}]}}")


def test_children_the_builder_could_not_evaluate_are_left_to_the_node_and_said():
    old = AppBuild("app", "1", (_sup("a", ["counter"]),))
    new = AppBuild("app", "2", (_sup("b", None, why="init/1 failed: badarg"),))
    entry = plan_appups([old], [new]).appups[0].entries[0]
    assert entry.up == ("{update, my_sup, supervisor}",)
    assert entry.notes == ("my_sup: child changes are not in the appup (init/1 failed: badarg); the node starts "
                           "children the release adds and removes those it no longer declares",)
    unnamed = AppBuild("app", "2", (_sup("b", ["x"], name=None),))
    assert "registers no name" in plan_appups([old], [unnamed]).appups[0].entries[0].notes[0]


def test_modinfo_supervisor_lines_become_supervisions_and_the_declared_tree():
    from hotdeploy.appup import declared_children
    text = ("app\tnew\tapp\t2\t.\n"
            "module\tnew\tapp\tmy_sup\tb\tsupervisor\n"
            "module\tnew\tapp\tpool_sup\tc\tsupervisor\n"
            "module\tnew\tapp\tworker\td\t-\n"
            "supervisor\tnew\tapp\tmy_sup\tmy_sup\tcounter\x1f{ticker,1}\n"
            "supervisor\tnew\tapp\tpool_sup\t-\tsimple\n")
    [app] = parse_modinfo(text).apps["new"]
    sup = app.by_name()["my_sup"].supervision
    assert sup.name == "my_sup" and sup.children == ("counter", "{ticker,1}")
    assert app.by_name()["pool_sup"].supervision.simple
    assert declared_children([app]) == [{"sup": "my_sup", "ids": ["counter", "{ticker,1}"]}]
