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
