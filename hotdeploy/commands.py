"""Remote command lines, one small function each (Kamal's commands layer).

Every function returns the exact text run over SSH; values are validated
upstream (versions, release names) and quoted here anyway. Nothing secret is
ever put in a command line: secrets travel over SFTP.
"""
from __future__ import annotations

import shlex

q = shlex.quote


def script(root: str, rel: str) -> str:
    return f"{q(root)}/bin/{q(rel)}"


def versions(root: str, rel: str) -> str:
    return f"{script(root, rel)} versions"


def node_pid(root: str, rel: str) -> str:
    return f"{script(root, rel)} pid"


def release_dir(root: str, vsn: str) -> str:
    return f"{root}/releases/{vsn}"


def tarball_path(root: str, rel: str, vsn: str) -> str:
    """Where relx's install/upgrade commands look for the tarball."""
    return f"{release_dir(root, vsn)}/{rel}.tar.gz"


def mkdir(path: str) -> str:
    return f"mkdir -p {q(path)}"


def sha256sum(path: str) -> str:
    return f"sha256sum {q(path)}"


def move(src: str, dest: str) -> str:
    return f"mv -f {q(src)} {q(dest)}"


def remove(path: str) -> str:
    return f"rm -f {q(path)}"


def validate_config(root: str, path: str) -> str:
    """Parse PATH with file:consult in the release's own ERTS: exit 0 when it
    holds exactly one list (a sys.config-style term), 3 otherwise."""
    erl = (
        f'case file:consult("{path}") of '
        '{ok, [L]} when is_list(L) -> halt(0); '
        '{ok, _} -> io:format("must hold exactly one list of {App, Env} terms~n"), halt(3); '
        # Only the line number: the message would quote the offending token,
        # and the file holds secrets.
        '{error, {L, _, _}} -> io:format("syntax error at line ~p~n", [L]), halt(3); '
        '{error, E} -> io:format("~s~n", [file:format_error(E)]), halt(3) end.'
    )
    return f"{q(root)}/erts-*/bin/erl -noshell -boot no_dot_erlang -eval {q(erl)}"


def install(root: str, rel: str, vsn: str, permanent: bool = False) -> str:
    """relx's install: unpacks the tarball if needed, then release_handler
    installs VSN (an upgrade or a downgrade, whichever the relups say)."""
    flag = "" if permanent else " --no-permanent"
    return f"{script(root, rel)} install {q(vsn)}{flag}"


def make_permanent(root: str, rel: str, vsn: str) -> str:
    expr = f'ok = release_handler:make_permanent("{vsn}").'
    return f"{script(root, rel)} eval {q(expr)}"


def health(port: int, path: str, timeout: float = 2.0) -> str:
    return f"curl -fsS --max-time {timeout:g} {q(f'http://127.0.0.1:{port}{path}')}"


def crash_reports(root: str) -> str:
    """How many crash and supervisor reports the node has logged so far: a
    code_change that breaks a process still lets release_handler say ok."""
    return (f"cat {q(root)}/log/erlang.log.* 2>/dev/null "
            "| grep -c -E 'CRASH REPORT|SUPERVISOR REPORT' || true")


def unpack_first_release(root: str, tarball: str) -> str:
    return f"tar -xzf {q(tarball)} -C {q(root)}"


def start_daemon(root: str, rel: str, timeout: int) -> str:
    """`bin/<rel> daemon` waits forever when boot fails: bound it. Its output
    goes to a file: sshd holds the session open while any process keeps the
    channel's pipes."""
    return (f"timeout {int(timeout)} {script(root, rel)} daemon "
            f"</dev/null >>{q(root)}/log/daemon.log 2>&1")


def ensure_cookie() -> str:
    """A per-host Erlang cookie, made on the host (never in git or the
    tarball): the node and bin/<rel> both read ~/.erlang.cookie."""
    return ("test -s ~/.erlang.cookie || (umask 077 && head -c 48 /dev/urandom | base64 | tr -dc A-Za-z0-9 "
            "> ~/.erlang.cookie && chmod 400 ~/.erlang.cookie)")


def systemd_present() -> str:
    return "test -d /run/systemd/system"


def enable_unit(unit_path: str, unit: str) -> str:
    return (f"install -m 0644 {q(unit_path)} /etc/systemd/system/{q(unit)} && "
            f"systemctl daemon-reload && systemctl enable --now {q(unit)}")


def append_log(root: str, line: str) -> str:
    return f"printf '%s\\n' {q(line)} >> {q(root)}/hotdeploy.log"


def systemd_unit(root: str, rel: str, user: str) -> str:
    """The seed's Upstart job, as a systemd unit."""
    return (
        "[Unit]\n"
        f"Description={rel} (OTP release, hot-upgraded by hotdeploy)\n"
        "After=network-online.target\nWants=network-online.target\n\n"
        "[Service]\n"
        f"User={user}\n"
        f"WorkingDirectory={root}\n"
        f"ExecStart={root}/bin/{rel} foreground\n"
        f"ExecStop={root}/bin/{rel} stop\n"
        "Restart=on-failure\nRestartSec=5\n"
        "# hot upgrades replace code in the running node: never restart on reload\n"
        "KillMode=mixed\n\n"
        "[Install]\nWantedBy=multi-user.target\n"
    )
