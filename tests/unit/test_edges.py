"""Hot or restart, per predecessor, from what the build found (pure)."""
from hotdeploy.appup import AppBuild, Module, ModuleReport, Supervision
from hotdeploy.edges import (RESTART, classify, edges_table, hot_versions, read_edges, relup_reasons,
                             restart_reasons, with_restart)
from hotdeploy.erlterm import consult


def _report(prev_mods, new_mods, prev_erts="13.1.5", new_erts="13.1.5", prev_nifs=None, new_nifs=None):
    r = ModuleReport()
    r.erts = {"new": new_erts, "prev:1.0.0": prev_erts}
    r.apps = {"new": [AppBuild("shop", "1.1.0", tuple(new_mods))], "prev:1.0.0": [AppBuild("shop", "1.0.0", tuple(prev_mods))]}
    r.nifs = {"new": new_nifs or {}, "prev:1.0.0": prev_nifs or {}}
    return r


def test_a_plain_code_change_is_hot():
    r = _report([Module("shop_web", "a")], [Module("shop_web", "b")])
    assert restart_reasons(r, "1.0.0") == []
    assert classify(["1.0.0"], {"1.0.0": []})["1.0.0"].strategy == "hot"


def test_what_rules_a_hot_upgrade_out_is_named():
    prev = [Module("shop_nif", "a", on_load=True), Module("shop_fsm", "a", behaviours=("gen_server",)),
            Module("shop_sup", "a", supervisor=True, supervision=Supervision("shop_sup", ("w",)))]
    new = [Module("shop_nif", "b", on_load=True), Module("shop_fsm", "b", behaviours=("gen_statem",)),
           Module("shop_sup", "b", supervisor=True, supervision=Supervision("shop_top", ("w",)))]
    r = _report(prev, new, new_erts="14.0", prev_nifs={"shop/priv/a.so": "1", "shop/priv/gone.so": "2"},
                new_nifs={"shop/priv/a.so": "9", "shop/priv/new.so": "3"})
    assert restart_reasons(r, "1.0.0") == [
        "ERTS 13.1.5 differs from the new release's 14.0: a hot upgrade cannot change the emulator",
        "module shop_fsm changed its behaviour (gen_server -> gen_statem): its processes cannot change code in place",
        "module shop_nif loads native code (-on_load) and changed",
        "supervisor shop_sup registers another name (shop_sup -> shop_top)",
        "NIF library shop/priv/a.so changed",
        "NIF library shop/priv/gone.so is gone"]


def test_the_apps_declaration_and_later_findings_make_restarts():
    edges = classify(["1.0.0", "1.1.0"], {}, declared="the session format changed")
    assert all(e.strategy == RESTART for e in edges.values())
    assert edges["1.0.0"].reasons == ("the app declares a restart (.hotdeploy/restart: the session format changed)",)
    hot = classify(["1.0.0", "1.1.0"], {})
    later = with_restart(hot, {"1.1.0": ["the relup says restart_new_emulator"]})
    assert hot_versions(later) == ["1.0.0"]
    assert edges_table(later) == ["1.0.0: hot", "1.1.0: restart (the relup says restart_new_emulator)"]


def test_a_relup_that_restarts_the_emulator_is_found():
    [(_, [(_, _, instructions)], _)] = consult(
        '{"2", [{"1", [], [restart_new_emulator, {load_object_code, {a, "2", [m]}}, point_of_no_return]}], []}.')
    assert relup_reasons(instructions) == ["the relup says restart_new_emulator"]


def test_edges_read_from_a_manifest_and_from_an_older_one():
    assert read_edges({"edges": {"1.0.0": {"strategy": "restart", "reasons": ["x"]}}})["1.0.0"].strategy == RESTART
    assert read_edges({"up_from": ["1.0.0"]})["1.0.0"].strategy == "hot"
