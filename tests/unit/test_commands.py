"""Remote command lines as text (the commands layer)."""
from hotdeploy import commands as cmd


def test_release_commands():
    assert cmd.versions("/srv/app", "shop") == "/srv/app/bin/shop versions"
    assert cmd.install("/srv/app", "shop", "1.2.3") == "/srv/app/bin/shop install 1.2.3 --no-permanent"
    assert cmd.install("/srv/app", "shop", "1.2.3", permanent=True) == "/srv/app/bin/shop install 1.2.3"
    assert cmd.make_permanent("/srv/app", "shop", "1.2.3") == \
        """/srv/app/bin/shop eval 'ok = release_handler:make_permanent("1.2.3").'"""
    assert cmd.tarball_path("/srv/app", "shop", "1.2.3") == "/srv/app/releases/1.2.3/shop.tar.gz"


def test_paths_with_spaces_and_quotes_are_quoted():
    assert cmd.mkdir("/srv/my app") == "mkdir -p '/srv/my app'"
    assert cmd.sha256sum("/tmp/a'b") == """sha256sum '/tmp/a'"'"'b'"""
    assert cmd.append_log("/srv/app", "to=1.2.3 result=upgraded") == \
        "printf '%s\\n' 'to=1.2.3 result=upgraded' >> /srv/app/hotdeploy.log"


def test_daemon_is_bounded_and_detached_from_the_session():
    assert cmd.start_daemon("/srv/app", "shop", 60) == \
        "timeout 60 /srv/app/bin/shop daemon </dev/null >>/srv/app/log/daemon.log 2>&1"


def test_config_validation_never_echoes_the_file():
    line = cmd.validate_config("/srv/app", "/srv/app/runtime.config.new")
    assert line.startswith("/srv/app/erts-*/bin/erl -noshell -boot no_dot_erlang -eval ")
    assert "syntax error at line" in line and 'file:consult("/srv/app/runtime.config.new")' in line


def test_health_check_and_unit():
    assert cmd.health(8080, "/api/public/version") == \
        "curl -fsS --max-time 2 http://127.0.0.1:8080/api/public/version"
    unit = cmd.systemd_unit("/srv/app", "shop", "deploy")
    assert "ExecStart=/srv/app/bin/shop foreground" in unit and "User=deploy" in unit
