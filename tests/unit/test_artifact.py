import pytest

from hotdeploy import layout
from hotdeploy.artifact import ArtifactError, check_release
from hotdeploy.erlterm import Atom, consult

REL = '{release,{"shop","1.1.0"},{erts,"13.1.5"},[{kernel,"8.5.3"},{shop,"1.1.0"}]}.'
RELUP = '''{"1.1.0",
 [{"1.0.0",[],[{load_object_code,{shop,"1.1.0",[shop_web]}},point_of_no_return,
               {load,{shop_web,soft_purge,soft_purge}}]}],
 [{"1.0.0",[],[{load_object_code,{shop,"1.0.0",[shop_web]}},point_of_no_return,
               {load,{shop_web,soft_purge,soft_purge}}]}]}.'''


def test_consult_reads_atoms_strings_tuples_lists_binaries():
    [t] = consult("%% c\n{a, 'Quoted atom', \"s\\n\", [1, -2, 3.5], <<\"bin\">>, 16#ff}.")
    assert t == ("a", "Quoted atom", "s\n", [1, -2, 3.5], b"bin", 255)
    assert isinstance(t[0], Atom) and not isinstance(t[2], Atom)


def test_good_release_passes():
    facts = check_release("shop", "1.1.0", REL, RELUP, ["1.0.0"], {"1.0.0": "13.1.5"})
    assert facts.up_from == ["1.0.0"] and facts.down_to == ["1.0.0"]
    assert facts.up_instructions[0] == '{load_object_code,{shop,"1.1.0",[shop_web]}}'


def test_a_relup_from_several_versions_must_cover_exactly_them():
    two = RELUP.replace(' [{"1.0.0",[],', ' [{"0.9.0",[],[]},{"1.0.0",[],', 2)
    facts = check_release("shop", "1.1.0", REL, two, ["1.0.0", "0.9.0"], {"0.9.0": "13.1.5"})
    assert facts.up_from == facts.down_to == ["0.9.0", "1.0.0"]
    assert facts.up_instructions[0] == '{load_object_code,{shop,"1.1.0",[shop_web]}}'   # from the newest
    with pytest.raises(ArtifactError, match=r"expected exactly \['0.9.0', '1.0.0', '1.0.5'\]"):
        check_release("shop", "1.1.0", REL, two, ["1.0.0", "0.9.0", "1.0.5"], {})
    with pytest.raises(ArtifactError, match="ERTS 13.1.5 differs from 12.0 of release 0.9.0"):
        check_release("shop", "1.1.0", REL, two, ["1.0.0", "0.9.0"], {"0.9.0": "12.0"})


def test_first_release_needs_no_relup():
    assert check_release("shop", "1.1.0", REL, None, [], {}).up_from == []


@pytest.mark.parametrize("kwargs,match", [
    (dict(version="1.2.0"), "holds release 1.1.0, expected 1.2.0"),
    (dict(previous="0.9.0"), r"expected exactly \[.0.9.0.\]"),
    (dict(relup=None), "has no releases/1.1.0/relup"),
    (dict(previous_erts="14.0"), "ERTS 13.1.5 differs from 14.0"),
    (dict(relup="{broken"), "is not a relup"),
])
def test_mismatches_are_named(kwargs, match):
    args = dict(version="1.1.0", relup=RELUP, previous="1.0.0", previous_erts="13.1.5") | kwargs
    with pytest.raises(ArtifactError, match=match):
        check_release("shop", args["version"], REL, args["relup"], [args["previous"]],
                      {args["previous"]: args["previous_erts"]})


def test_store_layout():
    def version(v):
        return [f"shop/{v}.tar.gz", f"shop/{v}.tar.gz.sha256", f"shop/{v}.manifest.json"]
    keys = [*version("1.10.0"), *version("1.0.0"), *version("1.9.0"), "shop/1.9.0.upgrade.tar.gz",
            "shop/VERSION", "shop/junk.tar.gz", "shop/1.9.0.rehearsal.json", "shop/environments/prod.json",
            "shop/1.11.0.tar.gz", "shop/1.11.0.tar.gz.sha256",          # interrupted before the manifest
            "shop/1.12.0.manifest.json"]                                # tarball lost
    listing = layout.list_published(keys)
    assert listing.published == layout.versions_in(keys) == ["1.0.0", "1.9.0", "1.10.0"]
    assert listing.incomplete == {"1.11.0": ["manifest"], "1.12.0": ["checksum", "tarball"]}
    assert listing.taken == ["1.0.0", "1.9.0", "1.10.0", "1.11.0", "1.12.0"]
    assert layout.parse_checksum(layout.checksum_line("a" * 64, "1.0.0")) == "a" * 64
    with pytest.raises(ValueError):
        layout.parse_checksum("")
    with pytest.raises(ValueError, match="is not a release name"):
        layout.check_app_name("shop; rm -rf /")
