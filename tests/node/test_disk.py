"""A release root on a small file system of its own (a tmpfs the test sizes):
space counted as the file system counts it, a disk that fills under an
upgrade, and a host that boots what it reports afterwards."""
from __future__ import annotations

import os
import subprocess
import threading
import time

import pytest

from hotdeploy.agent import Atom

from .releases import upgrade_package

APP = "example_app"
PAGE = 4096


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs at tmp_path/disk; resize(free_bytes) leaves that much free."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(mount)], check=True)

    class Disk:
        path = mount

        @staticmethod
        def free() -> int:
            st = os.statvfs(mount)
            return st.f_bavail * st.f_frsize

        @staticmethod
        def resize(free_bytes: int) -> None:
            st = os.statvfs(mount)
            used = (st.f_blocks - st.f_bfree) * st.f_frsize
            subprocess.run(["mount", "-o", f"remount,size={used + free_bytes}", str(mount)], check=True)
            assert abs(Disk.free() - free_bytes) < PAGE, (Disk.free(), free_bytes)
    yield Disk
    subprocess.run(["umount", "-l", str(mount)], check=False)


def config(node) -> str:
    return f"[{{{APP}, [{{port, {node.port}}}]}}].\n"


def test_space_is_counted_in_blocks_then_a_rerun_with_room_boots_the_new_version(make_node, releases, small_disk):
    """98,304 B free passed a check that counted 96,871 B of file contents;
    the unpack needs whole blocks, directories and room to spare."""
    node = make_node(releases.v1, root=small_disk.path / "srv")
    v2 = releases.v2
    package = upgrade_package(v2, releases.v1)     # what a host on v1 is sent
    small_disk.resize(98_304)
    refused = node.upgrade(v2, releases.v1.vsn, package=package, config=config(node))
    assert refused["result"] == "failed" and refused["step"] == "unpack", refused
    assert refused["detail"].startswith(f"disk full in {node.root}: unpacking {v2.vsn} needs ")
    assert "margin), have " in refused["detail"] and "nothing installed" in refused["detail"], refused["detail"]
    assert not (node.root / "releases" / v2.vsn).exists() and not (node.root / "bin" / f"{APP}-{v2.vsn}").exists()
    assert not list(node.root.glob("releases/.*.part")) and node.version() == releases.v1.vsn

    small_disk.resize(64 << 20)
    done = node.upgrade(v2, releases.v1.vsn, package=package, config=config(node))
    assert done["result"] == "done", done
    node.restart()
    assert node.version() == v2.vsn, "a restart boots what the deploy reported"


def test_a_disk_that_fills_before_permanence_sends_the_host_back_with_its_record(make_node, releases, small_disk):
    node = make_node(releases.v1, root=small_disk.path / "srv")
    pid = node.beam_pid()
    v2 = releases.v2
    answer = {}

    def upgrade():
        answer.update(node.upgrade(v2, releases.v1.vsn, package=v2.tarball, config=config(node), soak_ms=4000))
    worker = threading.Thread(target=upgrade)
    worker.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:   # the gate's soak: v2 runs and answers, not yet permanent
        try:
            if node.version() == v2.vsn:
                break
        except OSError:
            pass
        time.sleep(0.05)
    small_disk.resize(0)     # the disk fills, at once (a filler written chunk by chunk can outlast the soak)
    worker.join(60)
    assert answer["result"] == "rolled_back" and answer["step"] == "permanent", answer
    assert answer["detail"].startswith(f"disk full in {node.root}: making {v2.vsn} permanent needs ")
    facts = node.call("inspect")
    v1 = releases.v1.vsn
    assert (facts["running"], facts["permanent"], facts["start_script"], facts["start_erl"]) == (v1, v1, v1, v1)
    assert node.version() == v1 and node.beam_pid() == pid
    last = node.log_lines()[-1]
    assert " result=rolled_back running=1.0.1 boots=1.0.1 step=permanent" in last, node.log_lines()


def test_a_full_disk_reported_by_release_handler_is_said_in_words(node):
    """The raw error a failed unpack gives on a full disk, as the issue saw it."""
    from tasks.nodeprogram import node_program
    import base64
    beam = base64.b64encode(node_program()).decode()
    out = node.eval(f'{{module, M}} = code:load_binary(hotdeploy_node, "x", base64:decode(<<"{beam}">>)), '
                    f'put(hotdeploy_root, "{node.root}"), '
                    'W = M:explain({error,{{case_clause,{error,enospc}},[{release_handler,extract_tar,2,[]}]}}), '
                    'code:delete(M), code:purge(M), binary_to_list(W).')
    assert out.startswith(f'{{ok, "disk full in {node.root} (') and 'KiB free)"}' in out, out


def test_the_closing_line_needs_no_new_space(node, releases):
    """The result line is reserved with the begin line and overwritten in
    place; an attempt that never finished says `pending`."""
    node.upgrade(releases.v2, releases.v1.vsn, package=releases.v2.tarball, config=config(node),
                 fault=Atom("gate"))
    lines = (node.root / "hotdeploy.log").read_bytes().split(b"\n")[:-1]
    assert len(lines) == 2 and len(lines[1]) == 399, lines
    assert b"result=rolled_back" in lines[1]
