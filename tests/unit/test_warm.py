"""The warm engine's pure parts: which modules are ours (forgotten by the
server, imported by each run) and when the libraries changed under it."""
from __future__ import annotations

import os
import sys

from deployments import warm


def test_our_modules_are_the_checkouts_and_not_a_virtualenv_inside_it(tmp_path):
    root = str(tmp_path)
    assert warm.is_ours(f"{root}/tasks/network.py", root)
    assert not warm.is_ours(f"{sys.prefix}/lib/python3/site-packages/paramiko/__init__.py", sys.prefix)
    assert not warm.is_ours("/usr/lib/python3/json/__init__.py", root)
    assert not warm.is_ours(None, root)
    assert not warm.is_ours(f"{root}-other/x.py", root)


def test_a_library_directory_that_changed_is_stale_and_our_checkout_is_not_watched(tmp_path, monkeypatch):
    library, checkout = tmp_path / "site-packages", tmp_path / "checkout"
    library.mkdir()
    checkout.mkdir()
    monkeypatch.setattr(sys, "path", [str(checkout), str(library), str(tmp_path / "gone")])
    dirs = warm.library_dirs(str(checkout))
    assert list(dirs) == [str(library)]
    assert warm.stale(dirs) == []
    (checkout / "notes.txt").write_text("")
    assert warm.stale(dirs) == []
    (library / "new_package").mkdir()
    os.utime(library, (1, 1))      # a time that surely differs, whatever the file system's resolution
    assert warm.stale(dirs) == [str(library)]
