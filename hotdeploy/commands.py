"""Remote command lines, one small function each (Kamal's commands layer).

Every function returns the exact text run over SSH; values are validated
upstream (versions, release names) and quoted here anyway. Nothing secret is
ever put in a command line: secrets travel over SFTP.
"""
from __future__ import annotations

import re
import shlex

q = shlex.quote


def script(root: str, rel: str) -> str:
    return f"{q(root)}/bin/{q(rel)}"


def release_dir(root: str, vsn: str) -> str:
    return f"{root}/releases/{vsn}"


def tarball_path(root: str, rel: str, vsn: str) -> str:
    """Where unpack_release("VSN/REL") reads the package (relx's layout)."""
    return f"{release_dir(root, vsn)}/{rel}.tar.gz"


def package_name(rel: str, vsn: str) -> str:
    """The name release_handler:unpack_release takes for tarball_path."""
    return f"{vsn}/{rel}"


def staged_config_path(root: str) -> str:
    """Where the runtime config lands before the node program checks it."""
    return f"{root}/runtime.config.new"


def upload_path(root: str, rel: str, vsn: str) -> str:
    """Where the SFTP upload lands before its checksum is checked."""
    return f"{root}/releases/.{rel}-{vsn}.tar.gz.part"


def node_contact() -> str:
    """Set $name (`-name N` or `-sname N`) and $cookie from the first such
    lines of the vm.args file at $args, in the shell's own builtins: no
    process per field (sed and head cost each node call about 5 ms of the
    host's CPU). An unreadable file sets neither."""
    return ("name= && cookie= && { while read -r k v _ || [ -n \"$k\" ]; do case $k in "
            "-name|-sname) [ -n \"$name\" ] || [ -z \"$v\" ] || name=\"$k $v\";; "
            "-setcookie) [ -n \"$cookie\" ] || cookie=$v;; esac; "
            "done < \"$args\" || true; } 2>/dev/null")


CALLER_NAMES = 4096   # erl_call names a node ever sees from hotdeploy


def on_node(root: str, timeout: int) -> str:
    """Evaluate the program on stdin inside the running node: the release's
    own `erl_call` (no VM boot), the node name and cookie option from the
    vm.args of the release start_erl.data names, ~/.erlang.cookie otherwise."""
    return (f"cd {q(root)} && {{ read -r erts vsn || true; }} < releases/start_erl.data && "
            f"args=releases/$vsn/vm.args && {node_contact()} && "
            "{ [ -n \"$name\" ] || { echo \"no -name or -sname in $args\"; exit 1; }; } && "
            # erl_call's own name is c17 unless told: two calls at once to one
            # node would share it, and the second could not connect. Named by
            # the shell's pid (erl_call's, after exec), but modulo 4096: each
            # name is an atom in the node for its whole life, and pids run to
            # 4194304 where the atom table holds 1048576.
            f'exec erts-$erts/bin/erl_call $name -h hotdeploy_$(($$ % {CALLER_NAMES})) '
            f'${{cookie:+-c \"$cookie\"}} -timeout {int(timeout)} -e')


def stage_package(root: str, rel: str, vsn: str, sha256: str) -> str:
    """Check the uploaded package's sha256 on the host, then move it where
    unpack_release reads it; a mismatch removes it (exit 3)."""
    part, final = upload_path(root, rel, vsn), tarball_path(root, rel, vsn)
    return (f"if printf '%s  %s\\n' {q(sha256)} {q(part)} | sha256sum -c --status; then "
            f"mkdir -p {q(release_dir(root, vsn))} && mv -f {q(part)} {q(final)}; "
            f"else rm -f {q(part)}; echo 'package checksum mismatch after transfer: removed' >&2; exit 3; fi")


def mkdir(path: str) -> str:
    return f"mkdir -p {q(path)}"


def sha256sum(path: str) -> str:
    return f"sha256sum {q(path)}"


def move(src: str, dest: str) -> str:
    return f"mv -f {q(src)} {q(dest)}"


def remove(path: str) -> str:
    return f"rm -f {q(path)}"


def unpack_first_release(root: str, tarball: str) -> str:
    return f"tar -xzf {q(tarball)} -C {q(root)}"


# epmd, started by the node's first boot, listens on every interface unless
# told otherwise: where the node's distribution is on loopback, so is epmd.
EPMD_LOOPBACK = "ERL_EPMD_ADDRESS=127.0.0.1"


# The service's OS environment (the environment block's service_environment),
# beside the release: the systemd unit reads the first, the daemon start the
# second; both are written from the same variables, 0600.
SERVICE_ENV, SERVICE_ENV_SH = "service.env", "service.env.sh"


class BadServiceEnvironment(ValueError):
    pass


def parse_service_environment(text: str) -> dict[str, str]:
    """KEY=value lines (# comments and blank lines skipped) as a dict; a bad
    line is named by its number, never by its value (it may be secret)."""
    found: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, eq, value = line.partition("=")
        key = key.strip().removeprefix("export ").strip()
        if not eq or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise BadServiceEnvironment(f"service_environment line {n} is not KEY=value (a KEY of letters, digits "
                                        "and _, not starting with a digit)")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        found[key] = value
    return found


def service_environment_file(variables: dict[str, str]) -> str:
    """systemd's EnvironmentFile: KEY="value", with \\ and \" escaped."""
    return "".join(f'{k}="' + v.replace("\\", "\\\\").replace('"', '\\"') + '"\n' for k, v in variables.items())


def service_environment_script(variables: dict[str, str]) -> str:
    """The same variables for sh: export KEY='value' (quoted: no expansion)."""
    return "".join(f"export {k}={q(v)}\n" for k, v in variables.items())


def start_daemon(root: str, rel: str, timeout: int, loopback: bool = True) -> str:
    """`bin/<rel> daemon` waits forever when boot fails: bound it. Its output
    goes to a file: sshd holds the session open while any process keeps the
    channel's pipes. Started in the release root, as systemd starts it: the
    runtime config is named relative to it; with the service's environment
    when the release root has one."""
    env = f"{EPMD_LOOPBACK} " if loopback else ""
    return (f"cd {q(root)} && {{ test ! -f {SERVICE_ENV_SH} || . ./{SERVICE_ENV_SH}; }} && "
            f"{env}timeout {int(timeout)} {script(root, rel)} daemon "
            f"</dev/null >>{q(root)}/log/daemon.log 2>&1")


def _unit_enabled(rel: str) -> str:
    return f"systemctl is-enabled --quiet {q(rel + '.service')} 2>/dev/null"


def stop_node(root: str, rel: str, pid: int | None, timeout: int) -> str:
    """Stop the node the way it runs (its systemd unit, else its start
    script), wait until its emulator (PID, as the node itself said) is gone,
    and kill that process after TIMEOUT seconds (a restart deploy has drained
    it already). Never by a process pattern: another node may match it."""
    stop = (f"if {_unit_enabled(rel)}; then systemctl stop {q(rel + '.service')}; "
            f"else {script(root, rel)} stop >/dev/null 2>&1 || true; fi")
    if pid is None:
        return stop
    return (f"{stop}; for i in $(seq {int(timeout) * 10}); do kill -0 {int(pid)} 2>/dev/null || exit 0; "
            f"sleep 0.1; done; kill -9 {int(pid)} 2>/dev/null; exit 0")


def start_node(root: str, rel: str, timeout: int, loopback: bool = True) -> str:
    """Start the node the way it was provisioned: its systemd unit where one
    is enabled, else the release's daemon (bounded)."""
    return (f"if {_unit_enabled(rel)}; then systemctl start {q(rel + '.service')}; "
            f"else {start_daemon(root, rel, timeout, loopback)}; fi")


def cookie_for_start_script(root: str) -> str:
    """The host's cookie as releases/COOKIE, which a mix start script passes
    to the node (relx's script leaves it to ~/.erlang.cookie)."""
    return f"install -m 0400 ~/.erlang.cookie {q(root)}/releases/COOKIE"


def on_fresh_vm(root: str) -> str:
    """Evaluate the program on stdin in a VM of the release's own ERTS booted
    for it (before the node's first start: no node to ask yet), and print
    its value as erl_call does. sasl's path is added: release_handler is there."""
    reader = ('Rd = fun Rd(A) -> case io:get_line("") of eof -> unicode:characters_to_list(A); '
              'L -> Rd([A, L]) end end, '
              'try {ok, T, _} = erl_scan:string(Rd([])), {ok, E} = erl_parse:parse_exprs(T), '
              '{value, V, _} = erl_eval:exprs(E, []), io:put_chars(["{ok, \\"", V, "\\"}\\n"]), halt(0) '
              'catch C:R -> io:format(standard_error, "~0p~n", [{C, R}]), halt(1) end.')
    return (f"cd {q(root)} && {{ read -r erts vsn || true; }} < releases/start_erl.data && "
            # mix's boot files name their libraries $RELEASE_LIB; no crash dump on a failure
            "ERL_CRASH_DUMP_SECONDS=0 exec erts-$erts/bin/erl -noshell -boot releases/$vsn/start_clean "
            '-boot_var RELEASE_LIB "$PWD/lib" -pa lib/sasl-*/ebin '
            f"-eval {q(reader)}")


# Where `deployments.check --boot` puts its inputs in the boot container, and
# the lines that mark each answer in its output.
BOOT_INPUTS = "/hotdeploy-boot"
BOOT_MARK = "== hotdeploy boot check: "


def boot_check(root: str, rel: str, tries: int) -> str:
    """A first install in a container, as provision_one makes it on a host:
    the tarball unpacked at ROOT, the runtime config, a cookie made there,
    the first_boot op in a VM of its own, the daemon, then the gate op in the
    node (asked again while erl_call cannot reach it yet, up to TRIES times,
    0.2 s apart). Each answer follows a BOOT_MARK line."""
    inputs = BOOT_INPUTS
    return "\n".join([
        f"{mkdir(root + '/log')} && {unpack_first_release(root, inputs + '/release.tar.gz')}",
        f"cp {inputs}/runtime.config {q(root)}/runtime.config",
        f"{ensure_cookie()} && {cookie_for_start_script(root)}",
        f"echo '{BOOT_MARK}first_boot'",
        f"( {on_fresh_vm(root)} ) < {inputs}/first_boot || true",
        f"echo '{BOOT_MARK}start'",
        f"{start_daemon(root, rel, 60)} || {{ echo 'the daemon did not start:'; tail -n 30 {q(root)}/log/daemon.log; "
        f"for f in {q(root)}/log/erlang.log.* {q(root)}/erl_crash.dump; do test -f \"$f\" && tail -n 30 \"$f\"; "
        "done; exit 0; }",
        f"echo '{BOOT_MARK}gate'",
        f"for i in $(seq {int(tries)}); do out=$( ( {on_node(root, 120)} ) < {inputs}/gate 2>&1 ) || true; "
        "case $out in *'{ok,'*) break;; esac; sleep 0.2; done; echo \"$out\"",
    ])


def boot_sections(output: str) -> dict[str, str]:
    """boot_check's output by step: {step: what it printed}."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in output.splitlines():
        if line.startswith(BOOT_MARK):
            current = line[len(BOOT_MARK):].strip()
            sections[current] = []
        elif current:
            sections[current].append(line)
    return {step: "\n".join(lines).strip() for step, lines in sections.items()}


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


def log_lines_of(root: str, prefix: str) -> str:
    """The lines of hotdeploy.log an attempt wrote (PREFIX: its time and run)."""
    return f"grep -F -- {q(prefix)} {q(root)}/hotdeploy.log || true"


def append_log(root: str, line: str) -> str:
    return f"printf '%s\\n' {q(line)} >> {q(root)}/hotdeploy.log"


def systemd_unit(root: str, rel: str, user: str, start: str = "foreground", loopback: bool = True) -> str:
    """The seed's Upstart job, as a systemd unit."""
    return (
        "[Unit]\n"
        f"Description={rel} (OTP release, hot-upgraded by hotdeploy)\n"
        "After=network-online.target\nWants=network-online.target\n\n"
        "[Service]\n"
        f"User={user}\n"
        f"WorkingDirectory={root}\n"
        f"EnvironmentFile=-{root}/{SERVICE_ENV}\n"
        + (f"Environment={EPMD_LOOPBACK}\n" if loopback else "") +
        f"ExecStart={root}/bin/{rel} {start}\n"
        f"ExecStop={root}/bin/{rel} stop\n"
        "Restart=on-failure\nRestartSec=5\n"
        "# hot upgrades replace code in the running node: never restart on reload\n"
        "KillMode=mixed\n\n"
        "[Install]\nWantedBy=multi-user.target\n"
    )
