"""Remote command lines as text (the commands layer)."""
import pytest

from hotdeploy import commands as cmd


def test_release_paths():
    assert cmd.tarball_path("/srv/app", "shop", "1.2.3") == "/srv/app/releases/1.2.3/shop.tar.gz"
    assert cmd.package_name("shop", "1.2.3") == "1.2.3/shop"
    assert cmd.upload_path("/srv/app", "shop", "1.2.3") == "/srv/app/releases/.shop-1.2.3.tar.gz.part"


def test_on_node_uses_the_releases_own_erl_call_and_its_node_name():
    line = cmd.on_node("/srv/my app", 60)
    assert line.startswith("cd '/srv/my app' && ")
    assert "releases/start_erl.data" in line and "releases/$vsn/vm.args" in line
    assert line.endswith("exec erts-$erts/bin/erl_call $name -h hotdeploy_$(($$ % 4096)) "
                         "${cookie:+-c \"$cookie\"} -timeout 60 -e")


def test_erl_calls_name_is_its_own_pid_within_a_bounded_set(tmp_path):
    """Each name is an atom the node keeps for life: a caller's name is its
    pid (two callers alive at once differ) modulo 4096, so a node that has
    answered a million calls holds at most 4096 of them."""
    import subprocess
    fake = tmp_path / "erts-1" / "bin" / "erl_call"
    fake.parent.mkdir(parents=True)
    fake.write_text('#!/bin/sh\necho "$$ $4"\n')
    fake.chmod(0o755)
    (tmp_path / "releases" / "1").mkdir(parents=True)
    (tmp_path / "releases" / "start_erl.data").write_text("1 1\n")
    (tmp_path / "releases" / "1" / "vm.args").write_text("-name shop@h\n")
    for _ in range(3):
        pid, name = subprocess.run(["sh", "-c", cmd.on_node(str(tmp_path), 5)], capture_output=True,
                                   text=True, check=True).stdout.split()
        assert name == f"hotdeploy_{int(pid) % 4096}"


@pytest.mark.parametrize("vm_args, expected", [
    ("## relx\n-name shop@10.0.0.5\n-setcookie s3cr3t\n+K true\n", "-name shop@10.0.0.5|s3cr3t"),
    ("-sname shop\n-name later@h\n-setcookie a\n-setcookie b", "-sname shop|a"),   # first ones; no final newline
    ("  -name shop@h  # spaces\n\t+A 30\n", "-name shop@h|"),
    ("-name\n-sname shop\n", "-sname shop|"),                                      # a flag without its value
    ("+K true\n-setcookie x\n", "|x"),
    (None, "|"),                                                                  # no vm.args at all
])
def test_node_contact_reads_the_first_name_and_cookie_of_vm_args(tmp_path, vm_args, expected):
    import subprocess
    args = tmp_path / "vm.args"
    if vm_args is not None:
        args.write_text(vm_args)
    done = subprocess.run(["sh", "-c", f"args={args} && {cmd.node_contact()} && echo \"$name|$cookie\""],
                          capture_output=True, text=True)
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, expected, "")


def test_stage_package_checks_the_sum_then_moves_or_removes():
    line = cmd.stage_package("/srv/app", "shop", "1.2.3", "ab" * 32)
    assert f"printf '%s  %s\\n' {'ab' * 32} /srv/app/releases/.shop-1.2.3.tar.gz.part | sha256sum -c" in line
    assert "mv -f /srv/app/releases/.shop-1.2.3.tar.gz.part /srv/app/releases/1.2.3/shop.tar.gz" in line
    assert "else rm -f /srv/app/releases/.shop-1.2.3.tar.gz.part" in line and "exit 3" in line


def test_paths_with_spaces_and_quotes_are_quoted():
    assert cmd.mkdir("/srv/my app") == "mkdir -p '/srv/my app'"
    assert cmd.sha256sum("/tmp/a'b") == """sha256sum '/tmp/a'"'"'b'"""
    assert cmd.append_log("/srv/app", "to=1.2.3 result=upgraded") == \
        "printf '%s\\n' 'to=1.2.3 result=upgraded' >> /srv/app/hotdeploy.log"


def test_daemon_is_bounded_detached_from_the_session_and_keeps_epmd_on_loopback():
    assert cmd.start_daemon("/srv/app", "shop", 60) == \
        "cd /srv/app && { test ! -f service.env.sh || . ./service.env.sh; } && " \
        "ERL_EPMD_ADDRESS=127.0.0.1 timeout 60 /srv/app/bin/shop daemon </dev/null >>/srv/app/log/daemon.log 2>&1"
    assert "ERL_EPMD_ADDRESS" not in cmd.start_daemon("/srv/app", "shop", 60, loopback=False)


def test_unit():
    unit = cmd.systemd_unit("/srv/app", "shop", "deploy")
    assert "ExecStart=/srv/app/bin/shop foreground" in unit and "User=deploy" in unit
    assert "Environment=ERL_EPMD_ADDRESS=127.0.0.1\n" in unit
    assert "EnvironmentFile=-/srv/app/service.env\n" in unit, "the service's environment, if the block gives one"
    assert "ERL_EPMD_ADDRESS" not in cmd.systemd_unit("/srv/app", "shop", "deploy", loopback=False)
    assert "ExecStart=/srv/app/bin/shop start\n" in cmd.systemd_unit("/srv/app", "shop", "deploy", "start")


def test_a_fresh_vm_runs_the_release_own_erts_and_prints_like_erl_call():
    line = cmd.on_fresh_vm("/srv/my app")
    assert line.startswith("cd '/srv/my app' && { read -r erts vsn || true; } < releases/start_erl.data && "
                           "ERL_CRASH_DUMP_SECONDS=0 exec erts-$erts/bin/erl -noshell -boot releases/$vsn/start_clean "
                           '-boot_var RELEASE_LIB "$PWD/lib" -pa lib/sasl-*/ebin ')
    assert "-noinput" not in line, "the program comes on stdin"
    assert "halt(1)" in line, "a program that raises ends the VM (or the SSH command would hang)"
    assert cmd.cookie_for_start_script("/srv/app") == "install -m 0400 ~/.erlang.cookie /srv/app/releases/COOKIE"


def test_a_restart_stops_and_starts_the_node_the_way_it_runs_bounded():
    stop = cmd.stop_node("/srv/app", "shop", 4242, 30)
    assert stop.startswith("if systemctl is-enabled --quiet shop.service 2>/dev/null; then systemctl stop "
                           "shop.service; else /srv/app/bin/shop stop >/dev/null 2>&1 || true; fi; ")
    assert "for i in $(seq 300); do kill -0 4242 2>/dev/null || exit 0; sleep 0.1; done; " in stop
    assert stop.endswith("kill -9 4242 2>/dev/null; exit 0")
    assert "kill" not in cmd.stop_node("/srv/app", "shop", None, 30), "never by a pattern another node may match"
    start = cmd.start_node("/srv/app", "shop", 60)
    assert start == ("if systemctl is-enabled --quiet shop.service 2>/dev/null; then systemctl start shop.service; "
                     "else cd /srv/app && { test ! -f service.env.sh || . ./service.env.sh; } && "
                     "ERL_EPMD_ADDRESS=127.0.0.1 timeout 60 /srv/app/bin/shop daemon "
                     "</dev/null >>/srv/app/log/daemon.log 2>&1; fi")


def test_the_service_environment_is_the_same_for_systemd_and_for_sh_and_never_quoted_back():
    variables = cmd.parse_service_environment('# region\nREGION=eu-west-1\nexport TOKEN="a b"\n\nODD=it\'s $HOME "q"\n')
    assert variables == {"REGION": "eu-west-1", "TOKEN": "a b", "ODD": 'it\'s $HOME "q"'}
    assert cmd.service_environment_file(variables) == 'REGION="eu-west-1"\nTOKEN="a b"\nODD="it\'s $HOME \\"q\\""\n'
    assert cmd.service_environment_script(variables) == \
        "export REGION=eu-west-1\nexport TOKEN='a b'\nexport ODD='it'\"'\"'s $HOME \"q\"'\n"
    with pytest.raises(cmd.BadServiceEnvironment) as bad:
        cmd.parse_service_environment("A=1\nnot a line s3cr3t\n")
    assert "line 2" in str(bad.value) and "s3cr3t" not in str(bad.value)


def test_boot_check_installs_as_provisioning_does_then_asks_the_gate_until_the_node_answers():
    script = cmd.boot_check("/srv/app", "my_app", 25)
    lines = script.splitlines()
    assert lines[0] == "mkdir -p /srv/app/log && tar -xzf /hotdeploy-boot/release.tar.gz -C /srv/app"
    assert cmd.ensure_cookie() in script and cmd.cookie_for_start_script("/srv/app") in script
    # the steps in a host's order, each after its mark
    marks = [line.removeprefix("echo '" + cmd.BOOT_MARK).rstrip("'") for line in lines if cmd.BOOT_MARK in line]
    assert marks == ["first_boot", "start", "gate"]
    assert cmd.on_fresh_vm("/srv/app") in script and cmd.start_daemon("/srv/app", "my_app", 60) in script
    assert "for i in $(seq 25)" in script and cmd.on_node("/srv/app", 120) in script


def test_boot_sections_split_the_output_by_step():
    out = "noise\n" + "\n".join([cmd.BOOT_MARK + "first_boot", '{ok, "{}"}', cmd.BOOT_MARK + "start",
                                 cmd.BOOT_MARK + "gate", "a", "b"])
    assert cmd.boot_sections(out) == {"first_boot": '{ok, "{}"}', "start": "", "gate": "a\nb"}
