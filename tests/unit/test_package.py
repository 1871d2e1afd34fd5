"""Which files make an upgrade package (pure)."""
import pytest

from hotdeploy.package import PackageError, plan_upgrade_package

NAMES = ["releases/2.0.0/example_app.rel", "releases/2.0.0/relup", "releases/2.0.0/start.boot",
         "releases/example_app.rel", "releases/RELEASES", "releases/start_erl.data",
         "bin/example_app", "bin/example_app-2.0.0", "bin/nodetool", "erts-13.1.5/bin/beam.smp",
         "lib/kernel-8.5.3/ebin/kernel.app", "lib/example_app-2.0.0/ebin/example_app.app",
         "lib/example_app-2.0.0/ebin/example_app_web.beam", "lib/inets-8.2.2/ebin/inets.app"]
NEW = {"kernel": "8.5.3", "inets": "8.2.2", "example_app": "2.0.0"}
PREV = {"kernel": "8.5.3", "inets": "8.2.2", "example_app": "1.0.0"}


def test_only_the_changed_apps_the_release_dir_and_its_start_script():
    plan = plan_upgrade_package(NAMES, "example_app", "2.0.0", NEW, "13.1.5", PREV, "13.1.5")
    assert plan.libs == ["example_app-2.0.0"]
    assert plan.members == ["releases/2.0.0/example_app.rel", "releases/2.0.0/relup", "releases/2.0.0/start.boot",
                            "bin/example_app-2.0.0", "lib/example_app-2.0.0/ebin/example_app.app",
                            "lib/example_app-2.0.0/ebin/example_app_web.beam"]


def test_an_otp_app_that_changed_goes_in_too():
    plan = plan_upgrade_package(NAMES, "example_app", "2.0.0", NEW, "13.1.5",
                                {**PREV, "inets": "8.2.1"}, "13.1.5")
    assert plan.libs == ["example_app-2.0.0", "inets-8.2.2"]


def test_no_package_across_erts_or_from_an_incomplete_tarball():
    with pytest.raises(PackageError, match="ERTS"):
        plan_upgrade_package(NAMES, "example_app", "2.0.0", NEW, "13.2", PREV, "13.1.5")
    with pytest.raises(PackageError, match="lacks lib/ of example_app-2.0.0"):
        plan_upgrade_package([n for n in NAMES if "example_app-2.0.0/" not in n], "example_app", "2.0.0",
                             NEW, "13.1.5", PREV, "13.1.5")
