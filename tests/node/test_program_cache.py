"""The node program is compiled once per source and compiler, then read from
the worker's cache: every deployment run is a new process, and erlc costs
about half a second of CPU each time."""
from __future__ import annotations

from tasks import nodeprogram


def _fresh_process(monkeypatch) -> None:
    monkeypatch.setattr(nodeprogram, "_compiled", {})


def test_the_program_is_compiled_once_then_read_from_the_cache(tmp_path, monkeypatch):
    _fresh_process(monkeypatch)
    beam = nodeprogram.node_program(cache=tmp_path)
    [kept] = tmp_path.glob("hotdeploy_node-*-otp*.beam")
    assert kept.read_bytes() == beam and nodeprogram._whole(beam)
    assert not list(tmp_path.glob(".*.part")), "written whole, then renamed"

    _fresh_process(monkeypatch)
    monkeypatch.setattr(nodeprogram, "_compile", lambda *a: (_ for _ in ()).throw(AssertionError("compiled")))
    assert nodeprogram.node_program(cache=tmp_path) == beam, "a new process reads it, no erlc"


def test_a_damaged_cache_entry_is_compiled_again_and_an_unwritable_cache_costs_only_the_compile(
        tmp_path, monkeypatch):
    _fresh_process(monkeypatch)
    beam = nodeprogram.node_program(cache=tmp_path)
    [kept] = tmp_path.glob("hotdeploy_node-*.beam")
    for damaged in (b"not a beam", beam[:len(beam) // 2]):      # garbage; a write cut short
        kept.write_bytes(damaged)
        _fresh_process(monkeypatch)
        assert nodeprogram.node_program(cache=tmp_path) == beam and kept.read_bytes() == beam

    blocked = tmp_path / "file"
    blocked.write_text("")        # a cache path under a file: cannot be made
    _fresh_process(monkeypatch)
    assert nodeprogram.node_program(cache=blocked / "cache") == beam


def test_the_key_names_the_source_and_the_compilers_otp_release(tmp_path, monkeypatch):
    _fresh_process(monkeypatch)
    nodeprogram.node_program(cache=tmp_path)
    edited = tmp_path / "src" / "hotdeploy_node.erl"
    edited.parent.mkdir()
    edited.write_text(nodeprogram.SOURCE.read_text() + "\n%% an edit\n")
    _fresh_process(monkeypatch)
    nodeprogram.node_program(edited, cache=tmp_path)
    names = sorted(p.name for p in tmp_path.glob("*.beam"))
    assert len(names) == 2 and len({n.split("-otp")[1] for n in names}) == 1, names
    otp = names[0].split("-otp")[1].removesuffix(".beam")
    assert otp[0].isdigit(), f"read from the installation's OTP_VERSION: {otp}"
