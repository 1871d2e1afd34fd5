import pytest

from hotdeploy.manifest import ManifestError, check_manifest

GOOD = {"app": "shop", "version": "1.2.0", "previous": "1.1.0", "up_from": ["1.1.0", "1.0.0"],
        "down_to": ["1.1.0", "1.0.0"], "sha256": "a" * 64,
        "upgrade_package": {"from": "1.1.0", "sha256": "b" * 64, "size": 10, "libs": []}}


def test_a_good_manifest_is_returned_as_is():
    assert check_manifest("shop", "1.2.0", dict(GOOD)) == GOOD
    assert check_manifest("shop", "1.2.0", GOOD | {"previous": None, "upgrade_package": None})


@pytest.mark.parametrize("change,field", [
    ({"previous": "1.2.3;rm -rf /"}, "previous"),
    ({"previous": "1.2.3\u00e9"}, "previous"),
    ({"up_from": ["1.1.0", ""]}, "up_from"),
    ({"up_from": "1.1.0"}, "up_from"),
    ({"down_to": [None]}, "down_to"),
    ({"version": "1.3.0"}, "version"),
    ({"app": "other"}, "app"),
    ({"sha256": "$(reboot)"}, "sha256"),
    ({"upgrade_package": {"from": "../../x", "sha256": "b" * 64}}, "upgrade_package.from"),
    ({"upgrade_package": "yes"}, "upgrade_package"),
])
def test_garbage_is_named_with_its_field(change, field):
    with pytest.raises(ManifestError, match=f"invalid: {field} ") as e:
        check_manifest("shop", "1.2.0", GOOD | change)
    assert "nothing was built or deployed" in str(e.value)


def test_not_an_object():
    with pytest.raises(ManifestError, match="not a JSON object"):
        check_manifest("shop", "1.2.0", ["1.2.0"])
