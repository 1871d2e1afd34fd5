%%% hotdeploy's per-host program: hotdeploy's release_handler front end,
%%% loaded into the running node for one call and purged after it.
%%%
%%% The deployer compiles this module once per deploy (erlc on the worker),
%%% and sends it with the call's parameters to the release's own `erl_call`
%%% on the host (a C program: no VM boots there). The node loads it with
%%% code:load_binary/3, calls run/1, deletes and purges it: nothing of the
%%% app's is touched, and what it reports is what the node itself says.
%%%
%%% What it promises:
%%%  - one call, one answer: run/1 returns one JSON object as a printable
%%%    ASCII string; a failure is an answer (`result`, `step`, `detail` in
%%%    words), never an exception;
%%%  - `upgrade` changes nothing before every check passed (what runs, the
%%%    runtime config, the space the unpack needs counted in blocks);
%%%  - a failed unpack removes every file it made (bin/ included);
%%%  - after the first change to the running node, any failure of any class
%%%    at any step goes the way back: it waits for an install still running,
%%%    installs the previous release, restores its config and what a restart
%%%    boots, removes children the failed release added, gates the previous
%%%    release, and only then says `rolled_back`; otherwise `failed` with
%%%    what the node runs and what a restart would boot;
%%%  - a release is made permanent only once every file a restart needs is
%%%    there and not empty and the start script names it: a host is never
%%%    reported upgraded when a restart would boot something else;
%%%  - each attempt leaves two lines in <root>/hotdeploy.log: `begin`, and a
%%%    result line reserved at the start (so writing it needs no new disk
%%%    space) and overwritten at the end; `pending` there means the attempt
%%%    never finished (the node died or was killed mid-way).
%%%
%%% Ops (P = the parameters map, see params()):
%%%   inspect     what the node runs and knows, what a restart boots, free
%%%               space, the target's missing files, what the endpoint says.
%%%   upgrade     [unpack] -> config -> install (not permanent) -> children
%%%               -> gate -> permanent; or the way back.
%%%   gate        the gate alone (after a start or a restart); it can close
%%%               the record a prepare_restart began.
%%%   first_boot  before a first start, in a VM of its own: RELEASES, and a
%%%               mix release's sys.config.
%%%   prepare_restart  in the running node, for a release that cannot be
%%%               installed hot: the same checks and unpack as `upgrade`, the
%%%               new runtime config, then the release made what boots
%%%               (RELEASES, start_erl.data, the start script) without being
%%%               installed; undone if any of it fails. The deployer then
%%%               stops and starts the node and gates it.
%%%   set_boot    make VSN what boots again, with its config: file operations
%%%               only, so it also runs in a VM of its own when the new node
%%%               does not come up (the way back of a restart).
%%%   drain       before a restart: the app's drain function, or a GET of its
%%%               drain path, then a wait.
%%%   observe     the signals of a soak, sampled for window_ms, changing
%%%               nothing: a baseline host beside a canary.
%%%
%%% Signals: every soak (and observe) samples, every 100 ms (probe_ms), the
%%% app's probe path from inside the node (what a client of the host gets: failures and
%%% latency), and every 500 ms the VM (process count, the longest message
%%% queue, memory, run queue); it counts warning and error log events and the
%%% children of the app's tree that restarted. The answer carries them as
%%% numbers (`signals`); the deployer compares canary and baseline hosts.
-module(hotdeploy_node).

-export([run/1]).
%% For the node tests (tests/node), which call them directly.
-export([explain/1, json/1, blocks/2]).

-type vsn() :: string().
%% How the gate asks the app's endpoint: GET PATH on PORT (from inside the
%% node) must answer STATUS and a body that MATCH says: exact (the body, with
%% {version} replaced), json (BODY names a field, dotted for nested objects,
%% whose value is the version), regex (BODY is a regular expression, with
%% {version} replaced by the version quoted, that must match the body). No
%% PATH (an app with no HTTP endpoint): the node-only gate.
-type health() :: #{port := inet:port_number(), path := string() | none, status := pos_integer(),
                    body := binary(), match => exact | json | regex}.
-type children() :: [#{sup := atom(), ids := [binary()]}].
-type params() :: #{op := inspect | upgrade | gate | first_boot | prepare_restart | set_boot | drain | observe,
                    root := string(), rel := string(), app := atom(),
                    vsn => vsn(), previous => vsn(), mode => install | finish,
                    target => vsn(), package => string(), config => string(),
                    config_back => boolean(), record => string(),
                    health => health(), health_timeout_ms => non_neg_integer(),
                    soak_ms => non_neg_integer(), install_timeout_ms => pos_integer(),
                    boot_wait_ms => non_neg_integer(), expected_children => children(),
                    fault => atom(), close => close(), drain_mfa => {atom(), atom(), list()},
                    drain_path => string(), drain_ms => non_neg_integer(),
                    probe_path => string(), probe_ms => pos_integer(), window_ms => non_neg_integer(),
                    commit => boolean(),
                    presumed => boolean()}.
%% How a gate closes the record an earlier call began: the result written
%% when it passes (done) and when it fails (failed; none: leave it open).
-type close() :: #{slot := non_neg_integer(), from := vsn(), to := vsn(), done := atom(), failed := atom()}.
-type answer() :: #{atom() => term()}.

%% Room kept free beyond what an unpack or a permanence needs: logs, crash
%% reports, RELEASES rewrites.
-define(MARGIN, 1048576).
%% Bytes reserved in hotdeploy.log for an attempt's result line.
-define(SLOT, 400).

%%====================================================================
%% Entry
%%====================================================================

-spec run(params()) -> string().
run(P) ->
    put(hotdeploy_steps, []),
    put(hotdeploy_root, maps:get(root, P)),
    Answer = try
                 lists:member(maps:get(op, P), [first_boot, set_boot]) orelse booted(P),
                 case maps:get(op, P) of
                     first_boot -> first_boot(P);
                     inspect -> inspect(P);
                     upgrade -> upgrade(P);
                     gate -> gate_only(P);
                     prepare_restart -> prepare_restart(P);
                     set_boot -> set_boot_op(P);
                     drain -> drain(P);
                     observe -> observe(P)
                 end
             catch throw:{hotdeploy_fail, Step, Why} ->
                       #{result => failed, step => Step, detail => Why};
                   Class:Reason:Stack ->
                       case init:get_status() of
                           {stopping, _} -> #{result => node_restarting, detail => explain(Reason)};
                           _ -> #{result => failed, step => unknown, detail => explain({Class, Reason, Stack})}
                       end
             end,
    binary_to_list(iolist_to_binary(json(Answer#{steps => maps:from_list(get(hotdeploy_steps))}))).

%% A node still booting answers erl_call before release_handler runs; a
%% release without sasl never has one (nothing can be hot-loaded there).
-spec booted(params()) -> ok.
booted(P) ->
    Until = now_ms() + maps:get(boot_wait_ms, P, 15000),
    wait_booted(Until).

wait_booted(Until) ->
    case {init:get_status(), whereis(release_handler)} of
        {{started, _}, Pid} when is_pid(Pid) -> ok;
        {Status, Pid} ->
            case now_ms() > Until of
                true when Pid =:= undefined, element(1, Status) =:= started ->
                    fail(boot, "release_handler is not running in the node: the release must include sasl "
                               "(add it to the release's applications)", []);
                true -> fail(boot, "the node is not booted (~0p)", [Status]);
                false -> timer:sleep(100), wait_booted(Until)
            end
    end.

%%====================================================================
%% Failures, in words
%%====================================================================

-spec fail(atom(), io:format(), [term()]) -> no_return().
fail(Step, Fmt, Args) ->
    throw({hotdeploy_fail, Step, iolist_to_binary(io_lib:format(Fmt, Args))}).

%% Run one step, timed; any exception in it becomes a failure of that step,
%% in words (a failure inside a step is that step's, whoever raised it).
-spec step(atom(), params(), fun(() -> T)) -> T.
step(Name, P, Fun) ->
    T0 = now_ms(),
    try
        case maps:get(fault, P, none) of
            Name -> error({injected_fault, Name});
            _ -> ok
        end,
        Fun()
    catch throw:{hotdeploy_fail, _, Why} -> throw({hotdeploy_fail, Name, Why});
          Class:Reason:Stack ->
              case init:get_status() of
                  {stopping, _} -> erlang:raise(Class, Reason, Stack);
                  _ -> throw({hotdeploy_fail, Name, explain({Class, Reason, Stack})})
              end
    after
        put(hotdeploy_steps, [{Name, (now_ms() - T0) / 1000} | get(hotdeploy_steps)])
    end.

%% What an Erlang error means, for a person: the file system's and the
%% network's errors by name, release_handler's by what to do; anything else
%% as a short term (a bug of ours or of the app).
-spec explain(term()) -> binary().
explain(Term) ->
    case find_reason(Term) of
        {posix, enospc} -> words("disk full in ~s (~s free)", [root(), kib(free_bytes())]);
        {posix, edquot} -> words("disk quota exceeded in ~s", [root()]);
        {posix, eacces} -> words("permission denied in ~s (the node's user must own the release root)", [root()]);
        {posix, erofs} -> words("the file system of ~s is read-only", [root()]);
        {posix, E} -> words("~s", [file:format_error(E)]);
        {net, E} -> words("the endpoint's connection failed: ~s", [inet:format_error(E)]);
        {injected, Step} -> words("fault injected at ~s (a drill)", [Step]);
        none -> case Term of
                    {Class, Reason, [Top | _]} when is_atom(Class) ->
                        words("internal error (~s ~s at ~s)", [Class, short(Reason), short(Top)]);
                    _ -> short(Term)
                end
    end.

find_reason({injected_fault, Step}) -> {injected, Step};
find_reason(A) when A =:= enospc; A =:= edquot; A =:= eacces; A =:= erofs; A =:= enoent;
                    A =:= eisdir; A =:= enotdir; A =:= emfile; A =:= eexist -> {posix, A};
find_reason(A) when A =:= econnreset; A =:= econnrefused; A =:= closed; A =:= epipe;
                    A =:= etimedout; A =:= ehostunreach -> {net, A};
find_reason(T) when is_tuple(T) -> first_reason(tuple_to_list(T));
find_reason([_ | _] = L) -> case io_lib:printable_list(L) of true -> none; false -> first_reason(L) end;
find_reason(_) -> none.

first_reason([]) -> none;
first_reason([H | T]) -> case find_reason(H) of none -> first_reason(T); R -> R end.

words(Fmt, Args) -> iolist_to_binary(io_lib:format(Fmt, Args)).

short(T) ->
    B = iolist_to_binary(io_lib:format("~0P", [T, 24])),
    case byte_size(B) > 600 of
        true -> <<(binary:part(B, 0, 600))/binary, "...">>;
        false -> B
    end.

kib(null) -> "unknown";
kib(N) -> io_lib:format("~b KiB", [(N + 1023) div 1024]).

%%====================================================================
%% What the node says
%%====================================================================

root() -> get(hotdeploy_root).

releases() -> [{V, S} || {_, V, _, S} <- release_handler:which_releases()].

%% The release that runs: the one whose libraries are the versions of the
%% applications loaded now (release_handler updates them at each install);
%% among equals the current one, then the permanent one, then the booted
%% one. Never inferred from `permanent` alone: a node restarted by a stale
%% start script boots another release than the permanent one.
-spec running() -> vsn().
running() ->
    Rels = release_handler:which_releases(),
    Loaded = maps:from_list([{atom_to_list(A), V} || {A, _, V} <- application:loaded_applications()]),
    Fits = [{V, S} || {_, V, Libs, S} <- Rels,
                      lists:all(fun(Lib) -> [N, LV] = string:split(Lib, "-", trailing),
                                            maps:get(N, Loaded, LV) =:= LV end, Libs)],
    pick(case Fits of [] -> [{V, S} || {_, V, _, S} <- Rels]; _ -> Fits end).

pick(Cands) ->
    {_, Booted} = init:script_id(),
    case {[V || {V, current} <- Cands], [V || {V, permanent} <- Cands]} of
        {[C | _], _} -> C;
        {[], [Pm | _]} -> Pm;
        {[], []} -> case lists:keymember(Booted, 1, Cands) of
                        true -> Booted;
                        false -> case Cands of [{V1, _} | _] -> V1; [] -> Booted end
                    end
    end.

permanent() -> case [V || {V, permanent} <- releases()] of [V | _] -> V; [] -> null end.

script_path(P) -> filename:join([root(), "bin", maps:get(rel, P)]).
versioned_script(P, Vsn) -> script_path(P) ++ "-" ++ Vsn.

%% The version relx baked into a start script, or null (none, or mix's).
script_vsn(Path) ->
    case file:read_file(Path) of
        {ok, Text} ->
            case re:run(Text, "^REL_VSN=\"([^\"]*)\"", [multiline, {capture, all_but_first, list}]) of
                {match, [V]} -> V;
                nomatch -> null
            end;
        _ -> null
    end.

start_erl_vsn() ->
    case file:read_file(filename:join([root(), "releases", "start_erl.data"])) of
        {ok, Text} -> case string:lexemes(binary_to_list(Text), " \n") of [_, V] -> V; _ -> null end;
        _ -> null
    end.

%% What a restart boots: the start script's version (relx), else
%% start_erl.data's (mix's script reads it).
boots(P) ->
    case script_vsn(script_path(P)) of
        null -> start_erl_vsn();
        V -> V
    end.

%% {block size, bytes free to the node's user} of the file system of Root.
-spec disk() -> {pos_integer(), non_neg_integer()} | null.
disk() ->
    case string:lexemes(os:cmd("stat -f -c '%S %a' " ++ quote(root()) ++ " 2>/dev/null"), " \n") of
        [Bs, Avail] ->
            try {list_to_integer(Bs), list_to_integer(Bs) * list_to_integer(Avail)} catch _:_ -> null end;
        _ -> null
    end.

free_bytes() -> case disk() of {_, Free} -> Free; null -> null end.

quote(S) -> "'" ++ lists:flatten(string:replace(S, "'", "'\\''", all)) ++ "'".

%% Bytes a file of SIZE takes on a file system of BLOCK-sized blocks.
-spec blocks(non_neg_integer(), pos_integer()) -> non_neg_integer().
blocks(Size, Block) -> ((Size + Block - 1) div Block) * Block.

%% The files a restart of VSN needs, missing or empty.
-spec missing_files(params(), vsn()) -> [binary()].
missing_files(P, Vsn) ->
    Root = root(),
    Dir = filename:join([Root, "releases", Vsn]),
    Files = [filename:join(["releases", Vsn, F]) || F <- ["start.boot", "sys.config", "vm.args"],
             filelib:file_size(filename:join(Dir, F)) =:= 0],
    Libs = [filename:join("lib", Lib) || {_, V, Ls, _} <- release_handler:which_releases(), V =:= Vsn,
                                        Lib <- Ls,
                                        [] =:= filelib:wildcard(filename:join([Root, "lib", Lib, "ebin", "*.app"]))],
    %% relx ships bin/<rel>-<vsn>: when there is one it must be a start script for VSN
    Script = versioned_script(P, Vsn),
    Scripts = case filelib:is_file(Script) of
                  true -> case script_vsn(Script) of
                              Vsn -> [];
                              _ -> [filename:join("bin", filename:basename(Script))]
                          end;
                  false -> []
              end,
    [list_to_binary(M) || M <- Files ++ Libs ++ Scripts].

%%====================================================================
%% inspect
%%====================================================================

-spec inspect(params()) -> answer().
inspect(P) ->
    App = maps:get(app, P),
    {Block, Free} = case disk() of {B, F} -> {B, F}; null -> {null, null} end,
    Facts = #{node => node(), os_pid => list_to_integer(os:getpid()),
              releases => [#{vsn => str(V), status => S} || {V, S} <- releases()],
              running => str(running()), permanent => opt(permanent()),
              booted => str(element(2, init:script_id())),
              start_script => opt(script_vsn(script_path(P))), start_erl => opt(start_erl_vsn()),
              disk_free => Free, block_size => Block,
              app_vsn => case application:get_key(App, vsn) of {ok, AV} -> str(AV); _ -> null end,
              otp_release => str(erlang:system_info(otp_release)),
              %% another pid after an install means the node restarted its applications
              app_sup => case catch app_sup(P) of
                             Sup when is_pid(Sup) -> list_to_binary(pid_to_list(Sup));
                             _ -> null
                         end,
              erts => str(erlang:system_info(version)),
              config => config_hash(), result => done},
    Files = case maps:get(target, P, undefined) of
                undefined -> #{};
                T -> #{target_missing => missing_files(P, T)}
            end,
    Health = case maps:get(health, P, undefined) of
                 undefined -> #{};
                 H -> {Ok, Got} = answers(H, running()), #{answers => Ok, answer => Got}
             end,
    maps:merge(maps:merge(Facts, Files), Health).

%%====================================================================
%% upgrade (or downgrade): the way there, and the way back
%%====================================================================

-spec upgrade(params()) -> answer().
upgrade(P) ->
    Vsn = maps:get(vsn, P),
    Prev = maps:get(previous, P),
    Mode = maps:get(mode, P),
    Before = #{permanent => permanent(), script => script_vsn(script_path(P)), start_erl => start_erl_vsn(),
               tree => tree_ids(P)},
    Base = #{pid_before => list_to_integer(os:getpid()), from => str(running()), to => str(Vsn)},
    {Staged, Slot} = begin_attempt(P, case Mode of install -> Prev; finish -> Vsn end, Prev, Vsn),
    Outcome = try
                  step(unpack, P, fun() -> unpack(P, Mode, Vsn) end),
                  change(P, Mode, Prev, Vsn, Staged, Before)
              catch throw:{hotdeploy_fail, Step0, Why0} ->
                  %% before the running node changed: the unpack cleaned up after itself
                  drop_staged(P, Vsn),
                  #{result => failed, step => Step0, detail => Why0}
              end,
    After = try str(running()) catch _:_ -> null end,
    Boots = try opt(boots(P)) catch _:_ -> null end,
    Answer = maps:merge(Base, Outcome#{running => After, boots => Boots, signals => signals_answer(),
                                       config_overridden => case get(hotdeploy_overridden) of
                                                                undefined -> [];
                                                                Keys -> Keys
                                                            end,
                                       pid_after => list_to_integer(os:getpid()),
                                       permanent => try opt(permanent()) catch _:_ -> null end,
                                       config => config_hash()}),
    record_end(Slot, Prev, Vsn, Answer),
    Answer.

%% The checks before anything changes: the node runs EXPECTED, as at
%% preflight, and the staged runtime config is valid; then the attempt's
%% record begins. Returns {the staged config, the record's slot}; on a
%% failure, what the deployer staged for this call is removed.
begin_attempt(P, Expected, Prev, Vsn) ->
    try
        case maps:get(presumed, P, false) of
            true -> presumed(Expected, Vsn);
            false -> ok
        end,
        case running() of
            Expected -> ok;
            Now -> fail(preflight, "the node runs ~s, not ~s as it did at preflight (another deploy?): nothing "
                        "done", [Now, Expected])
        end,
        Staged = step(config_check, P, fun() -> check_config(P) end),
        {Staged, step(record, P, fun() -> record_begin(P, Prev, Vsn) end)}
    catch throw:Early -> drop_staged(P, Vsn), throw(Early)
    end.

%% A call the deployer made without asking the node first (one exchange
%% per host), on what the environment record says: the node runs EXPECTED,
%% permanent, and VSN is not unpacked. Anything else fails the `presumed`
%% step, nothing done: the deployer asks the node and decides as usual.
presumed(Expected, Vsn) ->
    Now = {running(), permanent(), lists:keymember(Vsn, 1, releases())},
    case Now of
        {Expected, Expected, false} -> ok;
        {Running, Permanent, Unpacked} ->
            fail(presumed, "the node is not as recorded (runs ~s, permanent ~s~s; recorded: ~s): nothing done",
                 [Running, opt_text(Permanent), case Unpacked of true -> ", " ++ Vsn ++ " unpacked"; false -> "" end,
                  Expected])
    end.

%% The staged config and, unless VSN is unpacked already, the staged package.
drop_staged(P, Vsn) ->
    case maps:get(config, P, none) of
        none -> ok;
        Staged -> _ = file:delete(Staged)
    end,
    case lists:keymember(Vsn, 1, releases()) of
        true -> ok;
        false -> drop_package(P, Vsn)
    end.

drop_package(P, Vsn) ->
    case maps:get(package, P, none) of
        none -> ok;
        Package -> _ = file:delete(filename:join([root(), "releases", Package ++ ".tar.gz"])),
                   _ = file:del_dir(filename:join([root(), "releases", Vsn])),
                   ok
    end.

%% From here the node changes: every failure, whatever its class, goes the
%% way back.
change(P, Mode, Prev, Vsn, Staged, Before) ->
    try
        watch_logs(),
        ConfigNote = step(config, P, fun() -> install_config(P, Mode, Prev, Vsn, Staged) end),
        case Mode of
            install ->
                step(install, P, fun() -> install(P, Vsn) end),
                step(children, P, fun() -> reconcile_children(P, maps:get(tree, Before)) end);
            finish -> ok
        end,
        step(gate, P, fun() -> gate(P, Vsn) end),
        case maps:get(commit, P, true) of
            true -> step(permanent, P, fun() -> make_boot(P, Vsn) end),
                    #{result => done, detail => ConfigNote};
            %% the deployer makes it permanent later (a canary verdict, a
            %% stability window): until then a restart boots what ran before
            false -> #{result => installed, detail => ConfigNote}
        end
    catch throw:{hotdeploy_fail, Step, Why} ->
        case init:get_status() of
            {stopping, _} ->
                %% release_handler answers an install that failed mid-relup by
                %% restarting the node (init:restart): this process dies with it.
                #{result => node_restarting, step => Step, detail => Why};
            _ ->
                way_back(P, Prev, Before, Step, Why)
        end
    after
        unwatch_logs()
    end.

%% Back to PREV, gated like an upgrade: only then `rolled_back`.
way_back(P, Prev, Before, Step, Why) ->
    put(hotdeploy_since, logger:timestamp()),
    _ = crash_lines(),
    put(hotdeploy_errors, []),
    try
        step(back_wait, P, fun() -> wait_pending_install(P) end),
        step(back_config, P, fun() -> restore_config(Prev) end),
        case running() of
            Prev -> ok;
            _ -> step(back, P, fun() -> install(P, Prev) end)
        end,
        step(back_children, P, fun() -> prune_children(P, maps:get(tree, Before)) end),
        step(back_boot, P, fun() -> restore_boot(P, Before) end),
        step(back_gate, P, fun() -> gate(P, Prev) end),
        #{result => rolled_back, step => Step,
          detail => iolist_to_binary([Why, "; back on ", Prev])}
    catch throw:{hotdeploy_fail, Step2, Why2} ->
        #{result => failed, step => Step,
          detail => words("~s; going back to ~s failed too (at ~s: ~s); the node runs ~s and a restart boots ~s: "
                          "needs attention", [Why, Prev, Step2, Why2, try running() catch _:_ -> "?" end,
                                              try boots(P) catch _:_ -> "?" end])}
    end.

%%--------------------------------------------------------------------
%% runtime config: checked before anything changes, kept per version
%%--------------------------------------------------------------------

config_file() -> filename:join(root(), "runtime.config").
kept_config(Vsn) -> filename:join([root(), "releases", Vsn, "hotdeploy.runtime.config"]).

%% The staged runtime config (the deployer sent it), checked; none when
%% the op keeps or restores the config instead.
check_config(P) ->
    case maps:get(config, P, none) of
        none -> none;
        Staged ->
            case file:consult(Staged) of
                {ok, [L]} when is_list(L) -> Staged;
                Bad ->
                    _ = file:delete(Staged),
                    %% Only a line number: the file holds secrets.
                    fail(config_check, "the environment's runtime_config is not valid Erlang config (~s); "
                         "nothing installed",
                         [case Bad of
                              {ok, _} -> "it must hold exactly one list of {App, Env} terms";
                              {error, {Line, _, _}} -> io_lib:format("syntax error at line ~p", [Line]);
                              {error, E} -> file:format_error(E)
                          end])
            end
    end.

%% The config in force with what runs now is kept beside it, then the new
%% one (or, going down, the target's kept one) takes its place. Links, not
%% copies: no new disk space is needed, so a full disk cannot stop the way
%% back from restoring a config.
install_config(P, Mode, Prev, Vsn, Staged) ->
    Mode =:= install andalso keep_config(Prev, false),
    case {Staged, maps:get(config_back, P, false)} of
        {none, true} when Mode =:= install ->
            case restore_config(Vsn) of
                true -> <<>>;
                false -> words("; no runtime config was kept for ~s: the current one stays", [Vsn])
            end;
        {none, _} -> <<>>;
        {Staged, _} -> ok = file:rename(Staged, config_file()), <<>>
    end.

keep_config(Vsn, Overwrite) ->
    Kept = kept_config(Vsn),
    case (Overwrite orelse not filelib:is_regular(Kept))
        andalso filelib:is_regular(config_file()) andalso filelib:is_dir(filename:dirname(Kept)) of
        true -> ok = link_over(config_file(), Kept);
        false -> ok
    end.

%% Back to VSN's config: true when one was kept, false when none was.
restore_config(Vsn) ->
    Kept = kept_config(Vsn),
    case filelib:is_regular(Kept) of
        true -> ok = link_over(Kept, config_file()), true;
        false -> false
    end.

%% DEST becomes another name of SRC, atomically.
link_over(Src, Dest) ->
    Tmp = Dest ++ ".hotdeploy-tmp",
    _ = file:delete(Tmp),
    case file:make_link(Src, Tmp) of
        ok -> file:rename(Tmp, Dest);
        {error, _} -> {ok, _} = file:copy(Src, Tmp), file:rename(Tmp, Dest)
    end.

config_hash() ->
    case file:read_file(config_file()) of
        {ok, Bin} -> list_to_binary(lists:sublist(hex(erlang:md5(Bin)), 12));
        _ -> null
    end.

hex(Bin) -> lists:flatten([io_lib:format("~2.16.0b", [B]) || <<B>> <= Bin]).

%%--------------------------------------------------------------------
%% unpack: counted in blocks, and nothing half-written left behind
%%--------------------------------------------------------------------

unpack(P, install, Vsn) ->
    case {maps:get(package, P, none), lists:keymember(Vsn, 1, releases())} of
        {_, true} -> ok;
        {none, false} -> fail(unpack, "~s is not unpacked on the host and no package was sent", [Vsn]);
        {Package, false} -> unpack_package(P, Package, Vsn)
    end;
unpack(_, finish, _) -> ok.

unpack_package(P, Package, Vsn) ->
    Root = root(),
    Tarball = filename:join([Root, "releases", Package ++ ".tar.gz"]),
    Members = case erl_tar:table(Tarball, [compressed, verbose]) of
                  {ok, Ms} -> [{M, Type, Size} || {M, Type, Size, _, _, _, _} <- Ms];
                  {error, E} -> fail(unpack, "the package for ~s cannot be read (~s): removed; nothing installed",
                                     [Vsn, erl_tar:format_error(E)])
              end,
    Stale = remove_stale(P, Members, Vsn),
    Have = maps:from_list([{M, true} || {M, _, _} <- Members, filelib:is_file(filename:join(Root, M))]),
    check_space(unpack, "unpacking " ++ Vsn, Members, Have),
    case catch release_handler:unpack_release(Package) of
        {ok, Vsn} -> ok;
        Bad ->
            Removed = remove_new_files(Members, Have),
            fail(unpack, "unpacking ~s failed: ~s; removed the ~b file(s) it wrote and the package, nothing installed",
                 [Vsn, explain(Bad), Removed])
    end,
    case missing_files(P, Vsn) of
        [] -> ok;
        Missing ->
            Removed2 = remove_new_files(Members, Have),
            _ = release_handler:remove_release(Vsn),
            fail(unpack, "unpacked ~s is incomplete (~s missing or empty): removed the ~b file(s) it wrote, "
                 "nothing installed", [Vsn, lists:join(", ", Missing), Removed2])
    end,
    Stale.

%% Enough room for the members not there yet, in blocks, directories
%% counted, plus a margin.
check_space(Step, What, Members, Have) ->
    case disk() of
        null -> ok;
        {Block, Free} ->
            Need = lists:sum([case T of
                                  regular -> blocks(S, Block);
                                  directory -> Block;
                                  _ -> 0
                              end || {M, T, S} <- Members, not maps:is_key(M, Have)]) + ?MARGIN,
            case Free >= Need of
                true -> ok;
                false -> fail(Step, "disk full in ~s: ~s needs ~s (counted in ~b-byte blocks, with a ~s margin), "
                              "have ~s; nothing installed",
                              [root(), What, kib(Need), Block, kib(?MARGIN), kib(Free)])
            end
    end.

%% Files of VSN's package left by an earlier unpack that failed without its
%% cleanup (the node died mid-way): release_handler extracts with
%% keep_old_files, so a stale empty file would survive the next unpack.
%% Only what no installed release owns: releases/VSN, bin/<rel>-VSN, and
%% lib/ dirs no release lists.
remove_stale(P, Members, Vsn) ->
    Root = root(),
    Owned = lists:usort(["lib/" ++ L || {_, _, Libs, _} <- release_handler:which_releases(), L <- Libs]),
    Package = "releases/" ++ Vsn ++ "/" ++ maps:get(rel, P) ++ ".tar.gz",
    Stale = [M || {M, regular, _} <- Members, M =/= Package,
                  filelib:is_regular(filename:join(Root, M)),
                  stale(M, Vsn, Owned)],
    [ok = file:delete(filename:join(Root, M)) || M <- Stale],
    length(Stale).

stale("releases/" ++ Rest, Vsn, _) -> lists:prefix(Vsn ++ "/", Rest) orelse lists:suffix("-" ++ Vsn ++ ".rel", Rest);
stale("bin/" ++ Name, Vsn, _) -> lists:suffix("-" ++ Vsn, Name);
stale("lib/" ++ Rest, _, Owned) ->
    [Lib | _] = string:split(Rest, "/"),
    not lists:member("lib/" ++ Lib, Owned);
stale(_, _, _) -> false.

%% Remove the members that were not there before (HAVE), then the
%% directories that became empty, deepest first. Returns how many files.
remove_new_files(Members, Have) ->
    Root = root(),
    New = [M || {M, regular, _} <- Members, not maps:is_key(M, Have)],
    Removed = length([ok || M <- New, file:delete(filename:join(Root, M)) =:= ok]),
    Dirs = lists:usort(lists:append([parents(M) || M <- New])),
    [file:del_dir(filename:join(Root, D)) || D <- lists:reverse(Dirs)],
    Removed.

parents(M) ->
    Parts = filename:split(filename:dirname(M)),
    [filename:join(lists:sublist(Parts, N)) || N <- lists:seq(2, length(Parts)), Parts =/= ["."]].

%%--------------------------------------------------------------------
%% install: bounded, and an install that outlives its bound is waited for
%%--------------------------------------------------------------------

install(P, Vsn) ->
    mix_sys_config(P, Vsn, true),
    case release_handler:check_install_release(Vsn) of
        {ok, _, _} -> ok;
        {error, E} -> fail(install, "release_handler refuses to install ~s: ~s", [Vsn, install_error(E, Vsn)])
    end,
    check_relup_supervisors(Vsn),
    Parent = self(),
    Ref = make_ref(),
    {Pid, MRef} = spawn_monitor(fun() ->
        Parent ! {Ref, catch release_handler:install_release(Vsn, [{update_paths, true}])} end),
    put(hotdeploy_install, {Pid, Ref, MRef, Vsn}),
    Limit = maps:get(install_timeout_ms, P),
    case install_result(Limit) of
        {ok, _, _} -> ok;
        timeout -> fail(install, "installing ~s did not finish within ~b ms", [Vsn, Limit]);
        {'DOWN', Why} -> fail(install, "installing ~s died: ~s", [Vsn, explain(Why)]);
        {error, E2} -> fail(install, "installing ~s failed: ~s", [Vsn, install_error(E2, Vsn)]);
        Other -> fail(install, "installing ~s failed: ~s", [Vsn, explain(Other)])
    end.

install_result(Limit) ->
    case get(hotdeploy_install) of
        undefined -> {ok, none, []};
        {_, Ref, MRef, _} ->
            receive
                {Ref, Result} -> erlang:demonitor(MRef, [flush]), erase(hotdeploy_install), Result;
                {'DOWN', MRef, _, _, Why} -> erase(hotdeploy_install), {'DOWN', Why}
            after Limit -> timeout
            end
    end.

%% The way back never races an install still running in release_handler
%% (it cannot be stopped: it runs in release_handler's own process): it
%% waits for it, as long again as the install was allowed (30 s at least).
wait_pending_install(P) ->
    case get(hotdeploy_install) of
        undefined -> ok;
        {_, _, _, Vsn} ->
            Limit = max(maps:get(install_timeout_ms, P), 30000),
            case install_result(Limit) of
                timeout -> fail(back_wait, "installing ~s is still running after another ~b ms: not going back "
                                "while it runs", [Vsn, Limit]);
                _ -> ok
            end
    end.

%% A relup's {apply, {supervisor, F, [Name | _]}} runs past release_handler's
%% point of no return: if that supervisor does not run here, the install
%% fails there and release_handler restarts the node's applications.
%% Checked before anything is installed.
check_relup_supervisors(Vsn) ->
    Names = lists:usort([N || {apply, {supervisor, _, [N | _]}} <- relup_instructions(Vsn), is_atom(N)]),
    case [atom_to_list(N) || N <- Names, not is_pid(whereis(N))] of
        [] -> ok;
        Absent -> fail(install, "the relup to ~s calls supervisor ~s, which does not run in this node: installing "
                       "would restart the node's applications; nothing installed", [Vsn, lists:join(", ", Absent)])
    end.

%% The instructions release_handler will run to go from what runs to VSN:
%% VSN's relup up from it, or (going down) its relup down to VSN.
relup_instructions(Vsn) ->
    Running = running(),
    Read = fun(V) -> case file:consult(filename:join([root(), "releases", V, "relup"])) of
                         {ok, [{_, Ups, Downs}]} -> {Ups, Downs};
                         _ -> {[], []}
                     end end,
    {Ups, _} = Read(Vsn),
    {_, Downs} = Read(Running),
    case [I || {From, _, I} <- Ups, From =:= Running] of
        [Instrs | _] -> Instrs;
        [] -> lists:append([I || {To, _, I} <- Downs, To =:= Vsn])
    end.

install_error({no_matching_relup, To, From}, _) ->
    words("its relup does not go from ~s to ~s", [From, To]);
install_error({enoent, Path}, Vsn) when is_list(Path) ->
    %% release_handler looked for an up-relup in VSN, then for a down-relup
    %% in what runs: neither goes from one to the other
    case filename:basename(Path) of
        "relup" -> words("its relup does not go from ~s to ~s", [running(), Vsn]);
        _ -> words("~s is missing", [Path])
    end;
install_error({no_such_release, V}, _) -> words("release ~s is not unpacked on the node", [V]);
install_error({already_installed, V}, _) -> words("~s is installed already", [V]);
install_error({bad_relup_file, F}, _) -> words("its relup file ~s is not readable", [F]);
install_error({no_such_file, F}, _) -> words("~s is missing", [F]);
install_error({old_processes, M}, _) ->
    words("processes still run the old code of ~s (soft_purge): retry when they moved on", [M]);
install_error(E, _) -> explain(E).

%%--------------------------------------------------------------------
%% children: what the release declares runs, nothing more
%%--------------------------------------------------------------------

app_sup(P) ->
    App = maps:get(app, P),
    case application_controller:get_master(App) of
        undefined -> fail(gate, "application ~s is not running in the node", [App]);
        Master -> case application_master:get_child(Master) of
                      {Sup, _} when is_pid(Sup) -> Sup;
                      Other -> fail(gate, "application ~s has no top supervisor (~0p)", [App, Other])
                  end
    end.

%% The tree as {Sup, Path, Id, Child, Type}, depth first.
tree(P) -> walk(app_sup(P), []).

walk(Sup, Path) ->
    Children = try supervisor:which_children(Sup)
               catch _:E -> [{unreadable, {error, E}, supervisor, []}] end,
    lists:append([[{Sup, Path ++ [Id], Id, C, Type} |
                   case C of
                       Pid when is_pid(Pid), Type =:= supervisor -> walk(Pid, Path ++ [Id]);
                       _ -> []
                   end] || {Id, C, Type, _} <- Children]).

tree_ids(P) -> try [{Sup, Id} || {Sup, _, Id, _, _} <- tree(P)] catch throw:_ -> [] end.

restart_of(Sup, Id) ->
    try
        {ok, Spec} = supervisor:get_childspec(Sup, Id),
        maps:get(restart, Spec, permanent)
    catch _:_ -> permanent
    end.

id_text(Id) -> iolist_to_binary(io_lib:format("~0p", [Id])).

%% The children each supervisor of the tree declares, by its callback
%% module, as the build evaluated them (expected_children); none given: no
%% declaration to hold the tree to.
declared(P) ->
    maps:from_list([{Sup, Ids} || #{sup := Sup, ids := Ids} <- maps:get(expected_children, P, [])]).

sup_module(Sup) -> try supervisor:get_callback_module(Sup) catch _:_ -> undefined end.

%% After an install: children whose specs the release added are started
%% ({update, Sup, supervisor} adds a spec, never its process, and a
%% hand-written appup may not start it), with the supervisor's own
%% restart_child; children the release does not declare (a downgrade
%% keeps the specs of the newer release) are stopped and their specs
%% deleted. One that does not start fails the step.
reconcile_children(P, Before) ->
    Declared = declared(P),
    [begin
         _ = supervisor:terminate_child(Sup, Id),
         _ = supervisor:delete_child(Sup, Id)
     end || {Sup, _, Id, _, _} <- tree(P),
            (case maps:get(sup_module(Sup), Declared, any) of
                 any -> false;
                 Ids -> not lists:member(id_text(Id), Ids)
             end) orelse not startable(Sup, Id)],
    [case supervisor:restart_child(Sup, Id) of
         {ok, _} -> ok;
         {ok, _, _} -> ok;
         {error, running} -> ok;
         {error, restarting} -> ok;
         {error, E} ->
             %% its crash report is logged by the child after it told the
             %% supervisor, so it can come after the way back began: that
             %% gate ignores it (the tree check still applies)
             Mod = try element(1, maps:get(start, element(2, supervisor:get_childspec(Sup, Id))))
                   catch _:_ -> undefined end,
             put(hotdeploy_ignore, [Mod | ignored()]),
             fail(children, "new child ~0p of ~s's supervision tree did not start: ~s",
                  [Path, maps:get(app, P), explain(E)])
     end || {Sup, Path, Id, undefined, _} <- tree(P), not lists:member({Sup, Id}, Before),
            restart_of(Sup, Id) =/= temporary],
    ok.

%% A child spec whose start function no longer exists (a downgrade keeps
%% the specs of the newer release while its modules go): the next time that
%% child exits, its supervisor restarts it into `undef` until its restart
%% intensity stops the application, and with it the node.
startable(Sup, Id) ->
    case supervisor:get_childspec(Sup, Id) of
        {ok, #{start := {M, F, A}}} when is_atom(M), is_atom(F), is_list(A) ->
            _ = code:ensure_loaded(M),
            erlang:function_exported(M, F, length(A));
        _ -> true
    end.

%% Going back: children the failed release added (not in BEFORE) are
%% stopped and their specs deleted; the release gone back to does not know
%% them.
prune_children(P, Before) ->
    [begin
         _ = supervisor:terminate_child(Sup, Id),
         _ = supervisor:delete_child(Sup, Id)
     end || {Sup, _, Id, _, _} <- tree(P), not lists:member({Sup, Id}, Before)],
    ok.

%% What is wrong with the tree: a child that should run and does not (not
%% a pid, not temporary), a declared child missing, a child not declared.
tree_problems(P, Declared) ->
    Tree = tree(P),
    Down = [words("~0p: ~0p (~s)", [Path, C, R])
            || {Sup, Path, Id, C, _} <- Tree, not is_pid(C),
               R <- [restart_of(Sup, Id)], {C, R} =/= {undefined, temporary}],
    Sups = [app_sup(P) | [C || {_, _, _, C, supervisor} <- Tree, is_pid(C)]],
    Mismatch = lists:append(
                 [case maps:get(sup_module(Sup), Declared, any) of
                      any -> [];
                      Ids ->
                          Have = [id_text(Id) || {S, _, Id, _, _} <- Tree, S =:= Sup],
                          [words("~s declares ~s, which is not in the tree", [sup_module(Sup), I])
                           || I <- Ids -- Have] ++
                          [words("~s runs ~s, which it no longer declares", [sup_module(Sup), I])
                           || I <- Have -- Ids]
                  end || Sup <- Sups]),
    Down ++ Mismatch.

ignored() -> case get(hotdeploy_ignore) of undefined -> []; L -> L end.

%%--------------------------------------------------------------------
%% the gate: VSN runs, the endpoint answers it, the tree is up, and for the
%% soak no error-level event
%%--------------------------------------------------------------------

gate_only(P) ->
    watch_logs(),
    Answer = try step(gate, P, fun() -> gate(P, maps:get(vsn, P)) end), #{result => done}
             catch throw:{hotdeploy_fail, Step, Why} -> #{result => failed, step => Step, detail => Why}
             after unwatch_logs()
             end,
    Facts = #{running => str(running()), permanent => opt(permanent()), boots => opt(boots(P)),
              pid_after => list_to_integer(os:getpid()), config => config_hash(), signals => signals_answer()},
    Closed = maps:merge(Facts, Answer),
    close_record(P, Closed),
    Closed.

%% The tree is held to the declared one when VSN is the target: the way back
%% has no declaration of the previous release (the tree check still applies).
gate(P, Vsn) ->
    H = maps:get(health, P),
    Limit = maps:get(health_timeout_ms, P),
    Declared = case maps:get(vsn, P, none) of Vsn -> declared(P); _ -> #{} end,
    wait_answer(P, H, Vsn, now_ms() + Limit, Limit),
    gate_check(P, Declared),
    put(hotdeploy_signals, signals(P, maps:get(soak_ms, P))),
    gate_check(P, Declared).

wait_answer(P, #{path := none} = H, Vsn, Deadline, Limit) ->
    %% the node-only gate: the release runs (the tree and the events are checked after)
    case running() of
        Vsn -> ok;
        V -> case now_ms() > Deadline of
                 true -> fail(gate, "health gate (node only): the node runs ~s, not ~s, within ~b ms", [V, Vsn, Limit]);
                 false -> timer:sleep(200), wait_answer(P, H, Vsn, Deadline, Limit)
             end
    end;
wait_answer(P, H, Vsn, Deadline, Limit) ->
    case {running(), answers(H, Vsn)} of
        {Vsn, {true, _}} -> ok;
        {V, {_, Got}} ->
            case now_ms() > Deadline of
                true -> fail(gate, "health gate: the node runs ~s; ~s answered ~s, not ~s, within ~b ms",
                             [V, maps:get(path, H), Got, element(2, expect(H, Vsn)), Limit]);
                false -> timer:sleep(200), wait_answer(P, H, Vsn, Deadline, Limit)
            end
    end.

gate_check(P, Declared) ->
    case tree_problems(P, Declared) of
        [] -> ok;
        Problems -> fail(gate, "health gate: supervision tree of ~s not as declared: ~s",
                         [maps:get(app, P), lists:join("; ", Problems)])
    end,
    case crash_lines() of
        [] -> ok;
        Crashes -> fail(gate, "health gate: ~b error event(s) (crash or supervisor reports) in the node since "
                        "the install (a code_change that does not match the state? a child that does not "
                        "start?): ~s", [length(Crashes), hd(Crashes)])
    end.

%% {status, what the body must be}, in words for a failed gate.
expect(H, Vsn) ->
    Body = str(maps:get(body, H)),
    {maps:get(status, H), case maps:get(match, H, exact) of
                              exact -> binary:replace(Body, <<"{version}">>, str(Vsn));
                              json -> words("a JSON body whose ~s is \"~s\"", [Body, Vsn]);
                              regex -> words("a body matching ~s", [regex_for(Body, Vsn)])
                          end}.

answers(#{path := none}, _) -> {true, <<"(node only: no endpoint)">>};
answers(H, Vsn) ->
    {Status, _} = expect(H, Vsn),
    case http_get(maps:get(port, H), maps:get(path, H)) of
        {Status, Got} -> case body_matches(H, Got, Vsn) of
                             true -> {true, Got};
                             false -> {false, words("~b ~s", [Status, Got])}
                         end;
        {Code, Got} when is_integer(Code) -> {false, words("~b ~s", [Code, Got])};
        {error, E} -> {false, http_error(E)}
    end.

body_matches(H, Got, Vsn) ->
    Body = str(maps:get(body, H)),
    case maps:get(match, H, exact) of
        exact -> Body =:= <<>> orelse Got =:= binary:replace(Body, <<"{version}">>, str(Vsn));
        json -> json_field(Got, binary:split(Body, <<".">>, [global])) =:= str(Vsn);
        regex -> re:run(Got, regex_for(Body, Vsn), [{capture, none}]) =:= match
    end.

%% The pattern with {version} as the version itself, quoted.
regex_for(Pattern, Vsn) ->
    binary:replace(Pattern, <<"{version}">>, iolist_to_binary(re:replace(str(Vsn), "[.^$*+?()\\[\\]{}|\\\\]",
                                                                          "\\\\&", [global])), [global]).

%% The value at PATH (keys) in a JSON document, as a binary (a string's
%% text, a number's digits), or none.
json_field(Text, Path) ->
    try json_value(skip(Text)) of
        {Value, _} -> at_path(Value, Path)
    catch _:_ -> none
    end.

at_path(V, []) when is_binary(V) -> V;
at_path(V, []) when is_number(V) -> iolist_to_binary(io_lib:format("~p", [V]));
at_path(M, [K | Ks]) when is_map(M) -> case maps:find(K, M) of {ok, V} -> at_path(V, Ks); error -> none end;
at_path(_, _) -> none.

%% A small JSON reader (OTP 25 has none): objects as maps, strings, numbers,
%% true/false/null, arrays.
json_value(<<"{", R/binary>>) -> json_object(skip(R), #{});
json_value(<<"[", R/binary>>) -> json_array(skip(R), []);
json_value(<<"\"", R/binary>>) -> json_string(R, []);
json_value(<<"true", R/binary>>) -> {true, R};
json_value(<<"false", R/binary>>) -> {false, R};
json_value(<<"null", R/binary>>) -> {null, R};
json_value(R) ->
    {match, [N]} = re:run(R, "^-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?", [{capture, [0], binary}]),
    <<_:(byte_size(N))/binary, Rest/binary>> = R,
    {binary_to_number(N), Rest}.

binary_to_number(N) -> try binary_to_integer(N) catch _:_ -> binary_to_float(N) end.

json_object(<<"}", R/binary>>, M) -> {M, R};
json_object(<<"\"", R/binary>>, M) ->
    {K, R1} = json_string(R, []),
    <<":", R2/binary>> = skip(R1),
    {V, R3} = json_value(skip(R2)),
    case skip(R3) of
        <<",", R4/binary>> -> json_object(skip(R4), M#{K => V});
        <<"}", R4/binary>> -> {M#{K => V}, R4}
    end.

json_array(<<"]", R/binary>>, Acc) -> {lists:reverse(Acc), R};
json_array(R, Acc) ->
    {V, R1} = json_value(R),
    case skip(R1) of
        <<",", R2/binary>> -> json_array(skip(R2), [V | Acc]);
        <<"]", R2/binary>> -> {lists:reverse([V | Acc]), R2}
    end.

json_string(<<"\"", R/binary>>, Acc) -> {iolist_to_binary(lists:reverse(Acc)), R};
json_string(<<"\\", C, R/binary>>, Acc) ->
    json_string(R, [case C of $n -> $\n; $t -> $\t; $r -> $\r; $b -> $\b; $f -> $\f; _ -> C end | Acc]);
json_string(<<C, R/binary>>, Acc) -> json_string(R, [C | Acc]).

skip(<<C, R/binary>>) when C =:= $\s; C =:= $\t; C =:= $\n; C =:= $\r -> skip(R);
skip(R) -> R.

http_error({not_http, Start}) -> words("no HTTP answer (it began ~0p)", [Start]);
http_error(E) when is_atom(E) -> words("no answer (~s)", [inet:format_error(E)]);
http_error(E) -> words("no answer (~s)", [short(E)]).

%% HTTP/1.0 GET on the node's own loopback: what a client of this host
%% gets. Every network error is an answer ({error, _}), never an exception:
%% an endpoint that resets is a gate that fails.
http_get(Port, Path) ->
    case gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}, {packet, raw}], 2000) of
        {ok, S} ->
            R = case gen_tcp:send(S, ["GET ", Path, " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"]) of
                    ok -> recv_all(S, []);
                    {error, E} -> {error, E}
                end,
            gen_tcp:close(S),
            case R of
                {ok, <<"HTTP/", _:3/binary, " ", Code:3/binary, _/binary>> = Resp} ->
                    Body = case binary:split(Resp, <<"\r\n\r\n">>) of [_, B] -> B; [_] -> <<>> end,
                    try {binary_to_integer(Code), string:trim(Body)}
                    catch _:_ -> {error, {not_http, binary:part(Resp, 0, min(40, byte_size(Resp)))}} end;
                {ok, Other} -> {error, {not_http, binary:part(Other, 0, min(40, byte_size(Other)))}};
                {error, _} = Err -> Err
            end;
        {error, _} = Err -> Err
    end.

recv_all(S, Acc) ->
    case gen_tcp:recv(S, 0, 2000) of
        {ok, D} -> recv_all(S, [Acc, D]);
        {error, closed} -> {ok, iolist_to_binary(Acc)};
        {error, E} -> {error, E}
    end.

%% Error-level log events while the gate watches (crash reports, supervisor
%% reports, a gen_server terminating): a primary logger filter that forwards
%% them to this process, so it works whatever the node's output goes to
%% (journald, run_erl logs, /dev/null).
watch_logs() ->
    put(hotdeploy_since, 0),
    _ = logger:remove_primary_filter(hotdeploy_gate),
    put(hotdeploy_warnings, 0),
    put(hotdeploy_errors, []),
    Filter = fun(#{level := L} = E, To) ->
                     case logger:compare_levels(L, warning) of
                         lt -> ignore;
                         _ -> To ! {hotdeploy_event, maps:with([level, msg, meta], E)}, ignore
                     end end,
    case logger:add_primary_filter(hotdeploy_gate, {Filter, self()}) of
        ok -> ok;
        Err -> fail(gate, "cannot watch the node's log events (~0p): the gate cannot tell, so it fails", [Err])
    end.

unwatch_logs() -> logger:remove_primary_filter(hotdeploy_gate).

%% Every error event received since the gate began (hotdeploy_since, a
%% logger timestamp: a crash report of the failed release that arrives late
%% must not fail the gate of the way back); warnings are counted.
crash_lines() ->
    New = collect([]),
    All = get_errors() ++ New,
    put(hotdeploy_errors, All),
    All.

collect(Acc) ->
    Since = get(hotdeploy_since),
    receive
        {hotdeploy_event, #{meta := #{time := T}}} when T < Since -> collect(Acc);
        {hotdeploy_event, #{level := warning}} ->
            put(hotdeploy_warnings, get(hotdeploy_warnings) + 1),
            collect(Acc);
        {hotdeploy_event, #{msg := Msg, meta := Meta}} ->
            Text = case Msg of
                       {report, R} -> short(R);
                       {string, S} -> short(unicode:characters_to_binary(S));
                       {F, A} -> short(catch io_lib:format(F, A))
                   end,
            Ignored = [M || M <- ignored(), is_atom(M),
                            binary:match(Text, <<"{initial_call,{", (atom_to_binary(M))/binary, ",">>) =/= nomatch],
            case Ignored of
                [] -> collect([words("~0p: ~s", [maps:get(pid, Meta, undefined), Text]) | Acc]);
                _ -> collect(Acc)
            end
    after 0 -> lists:reverse(Acc)
    end.

%%--------------------------------------------------------------------
%% signals: how the service behaves during a soak, as numbers
%%--------------------------------------------------------------------

-define(PROBE_MS, 100).
-define(VM_MS, 500).        % the VM is sampled every 500 ms, whatever the probes' pace

%% The soak's signals, or null when no soak ran (a gate that failed first).
signals_answer() -> case get(hotdeploy_signals) of undefined -> null; S -> S end.

-spec observe(params()) -> answer().
observe(P) ->
    watch_logs(),
    try
        Signals = step(observe, P, fun() -> signals(P, maps:get(window_ms, P)) end),
        #{result => done, running => str(running()), pid_after => list_to_integer(os:getpid()), signals => Signals}
    after unwatch_logs()
    end.

get_errors() -> case get(hotdeploy_errors) of undefined -> []; L -> L end.

%% Sample for MS: the probe path from inside the node every probe_ms (100 ms
%% unless said: a canary window asks more often), the VM every 500 ms; log
%% events through the gate's filter (warnings counted by crash_lines), child
%% restarts by comparing the tree's pids.
signals(P, Ms) ->
    Every = probe_ms(P),
    H = maps:get(health, P),
    Path = case maps:get(probe_path, P, maps:get(path, H)) of "" -> none; Given -> Given end,
    Pids0 = child_pids(P),
    Errors0 = length(crash_lines()),
    Warn0 = get(hotdeploy_warnings),
    Vm0 = vm(),
    S = sample(maps:get(port, H), Path, Every, now_ms() + Ms, 0,
               #{lat => [], failed => 0, queue => maps:get(queue, Vm0), runq => maps:get(runq, Vm0)}),
    Vm1 = vm(),
    Errors = length(crash_lines()) - Errors0,
    Lat = lists:sort(maps:get(lat, S)),
    N = length(Lat),
    Pct = fun(_, 0) -> null; (Q, _) -> round_ms(lists:nth(max(1, min(N, ceil(Q * N))), Lat)) end,
    #{window_ms => Ms, probe_path => opt(case Path of none -> null; _ -> Path end), probe_ms => Every, probes => N,
      failed => maps:get(failed, S),
      p50_ms => Pct(0.5, N), p99_ms => Pct(0.99, N), max_ms => case Lat of [] -> null; _ -> round_ms(lists:last(Lat)) end,
      warning_events => get(hotdeploy_warnings) - Warn0, error_events => Errors,
      child_restarts => restarts(Pids0, child_pids(P)),
      processes_start => maps:get(processes, Vm0), processes_end => maps:get(processes, Vm1),
      max_queue => max(maps:get(queue, S), maps:get(queue, Vm1)),
      memory_start_mb => maps:get(memory_mb, Vm0), memory_end_mb => maps:get(memory_mb, Vm1),
      run_queue_max => max(maps:get(runq, S), maps:get(runq, Vm1))}.

%% The probes' pace, checked before any probe: a caller's mistake is said, not a badarith.
probe_ms(P) ->
    case maps:get(probe_ms, P, ?PROBE_MS) of
        Ms when is_integer(Ms), Ms > 0 -> Ms;
        Other -> fail(observe, "probe_ms must be a whole number of milliseconds above 0, not ~0p", [Other])
    end.

sample(_, none, _, Until, _, Acc) ->
    %% no endpoint to probe (the node-only gate): the VM and the events only
    timer:sleep(max(0, Until - now_ms())),
    Vm = vm(),
    Acc#{queue := max(maps:get(queue, Acc), maps:get(queue, Vm)), runq := max(maps:get(runq, Acc), maps:get(runq, Vm))};
sample(Port, Path, Every, Until, I, Acc) ->
    case now_ms() >= Until of
        true -> Acc;
        false ->
            T0 = erlang:monotonic_time(microsecond),
            Ok = case http_get(Port, Path) of
                     {Code, _} when is_integer(Code), Code < 500 -> true;
                     _ -> false
                 end,
            Us = erlang:monotonic_time(microsecond) - T0,
            Acc1 = Acc#{lat := [Us | maps:get(lat, Acc)],
                        failed := maps:get(failed, Acc) + case Ok of true -> 0; false -> 1 end},
            Acc2 = case (I + 1) rem max(1, ?VM_MS div Every) of
                       0 -> Vm = vm(),
                            Acc1#{queue := max(maps:get(queue, Acc1), maps:get(queue, Vm)),
                                  runq := max(maps:get(runq, Acc1), maps:get(runq, Vm))};
                       _ -> Acc1
                   end,
            timer:sleep(max(0, Every - Us div 1000)),
            sample(Port, Path, Every, Until, I + 1, Acc2)
    end.

round_ms(Us) -> round(Us / 100) / 10.

%% The VM now: processes, the longest message queue, memory, run queue.
vm() ->
    Queue = lists:foldl(fun(Pid, Max) ->
                                case erlang:process_info(Pid, message_queue_len) of
                                    {message_queue_len, L} -> max(L, Max);
                                    undefined -> Max
                                end end, 0, erlang:processes()),
    #{processes => erlang:system_info(process_count), queue => Queue,
      memory_mb => round(erlang:memory(total) / 104857.6) / 10, runq => erlang:statistics(total_run_queue_lengths_all)}.

%% Each child of the app's tree that is a process, by {Sup, Id}.
child_pids(P) ->
    try maps:from_list([{{Sup, Id}, C} || {Sup, _, Id, C, _} <- tree(P), is_pid(C)])
    catch throw:_ -> #{}
    end.

%% Children running under another pid than at the start: restarted.
restarts(Before, After) ->
    length([K || {K, Pid} <- maps:to_list(After), maps:is_key(K, Before), maps:get(K, Before) =/= Pid]).

%%--------------------------------------------------------------------
%% permanence: what a restart boots, checked before and after
%%--------------------------------------------------------------------

%% Make VSN what a restart boots: release_handler's RELEASES and
%% start_erl.data, and the start script (relx bakes REL_VSN into bin/<rel>;
%% its own install copies bin/<rel>-<vsn> over it, so does this).
make_boot(P, Vsn) ->
    case missing_files(P, Vsn) of
        [] -> ok;
        Missing -> fail(permanent, "~s cannot be made permanent: a restart would fail (~s missing or empty)",
                        [Vsn, lists:join(", ", Missing)])
    end,
    Versioned = versioned_script(P, Vsn),
    Size = filelib:file_size(Versioned),
    case disk() of
        {Block, Free} when Free < ?MARGIN + 2 * Block + Size ->
            fail(permanent, "disk full in ~s: making ~s permanent needs ~s, have ~s",
                 [root(), Vsn, kib(?MARGIN + 2 * Block + blocks(Size, Block)), kib(Free)]);
        _ -> ok
    end,
    case release_handler:make_permanent(Vsn) of
        ok -> ok;
        {error, E} -> fail(permanent, "release_handler cannot make ~s permanent: ~s", [Vsn, explain(E)])
    end,
    set_script(P, Vsn),
    keep_config(Vsn, true).

%% The start script that boots VSN, where relx ships one, copied over
%% bin/<rel> and read back.
set_script(P, Vsn) ->
    Script = script_path(P),
    Versioned = versioned_script(P, Vsn),
    case filelib:is_regular(Versioned) of
        true ->
            case script_vsn(Script) of
                Vsn -> ok;
                _ ->
                    Tmp = Script ++ ".hotdeploy-tmp",
                    case file:copy(Versioned, Tmp) of
                        {ok, _} -> ok;
                        {error, E} -> _ = file:delete(Tmp),
                                      fail(permanent, "cannot write bin/~s: ~s", [maps:get(rel, P), explain(E)])
                    end,
                    ok = file:change_mode(Tmp, 8#755),
                    ok = file:rename(Tmp, Script)
            end;
        false -> ok
    end,
    case {boots(P), start_erl_vsn(), filelib:file_size(Script)} of
        {Vsn, Vsn, Bytes} when Bytes > 0 -> ok;
        {B, E2, Bytes} -> fail(permanent, "~s is permanent but a restart would boot ~s (bin/~s: ~s, ~b bytes; "
                               "start_erl.data: ~s)", [Vsn, opt_text(B), maps:get(rel, P),
                                                       opt_text(script_vsn(Script)), Bytes, opt_text(E2)])
    end.

%% Going back: what a restart boots is what it was before the attempt.
restore_boot(P, Before) ->
    case maps:get(permanent, Before) of
        null -> ok;
        WasPermanent ->
            case permanent() of
                WasPermanent -> ok;
                _ -> case release_handler:make_permanent(WasPermanent) of
                         ok -> ok;
                         {error, E} -> fail(back_boot, "cannot make ~s permanent again: ~s",
                                            [WasPermanent, explain(E)])
                     end
            end,
            case maps:get(script, Before) of
                null -> ok;
                Was -> case script_vsn(script_path(P)) of
                           Was -> ok;
                           _ -> set_script(P, Was)
                       end
            end
    end.

opt_text(null) -> "none";
opt_text(V) -> V.

%%--------------------------------------------------------------------
%% hotdeploy.log: a begin line and a reserved result line per attempt
%%--------------------------------------------------------------------

log_file() -> filename:join(root(), "hotdeploy.log").

record_begin(P, Prev, Vsn) ->
    case maps:get(record, P, none) of
        none -> none;
        Prefix ->
            %% The top supervisor: should the answer be lost, another pid
            %% now says release_handler restarted the applications.
            Sup = case catch app_sup(P) of
                      S when is_pid(S) -> [" sup=", pid_to_list(S)];
                      _ -> []
                  end,
            Begin = iolist_to_binary([Prefix, " from=", Prev, " to=", Vsn, " result=begin", Sup, "\n"]),
            Pending = slot_line(iolist_to_binary([Prefix, " from=", Prev, " to=", Vsn,
                                                  " result=pending (the attempt did not finish)"])),
            Offset = case file:read_file_info(log_file()) of
                         {ok, Info} -> element(2, Info);
                         {error, enoent} -> 0
                     end,
            case file:write_file(log_file(), [Begin, Pending], [append]) of
                ok -> {Prefix, Offset + byte_size(Begin)};
                {error, E} -> fail(record, "cannot write ~s: ~s; nothing changed", [log_file(), explain(E)])
            end
    end.

slot_line(Text) ->
    Line = binary:part(Text, 0, min(byte_size(Text), ?SLOT - 1)),
    <<Line/binary, (binary:copy(<<" ">>, ?SLOT - 1 - byte_size(Line)))/binary, "\n">>.

%% The record a prepare_restart began, closed by a later call (the gate of
%% the new node, or of the old one on the way back).
close_record(P, Answer) ->
    case {maps:get(close, P, none), maps:get(record, P, none)} of
        {#{slot := Slot, from := From, to := To} = Close, Prefix} when Prefix =/= none ->
            Result = case maps:get(result, Answer) of
                         done -> maps:get(done, Close);
                         _ -> maps:get(failed, Close)
                     end,
            Result =:= none orelse record_end({Prefix, Slot}, From, To, Answer#{result => Result});
        _ -> ok
    end.

record_end(none, _, _, _) -> ok;
record_end({Prefix, Offset}, Prev, Vsn, Answer) ->
    Line = slot_line(iolist_to_binary(
                       [Prefix, " from=", Prev, " to=", Vsn, " result=", atom_to_list(maps:get(result, Answer)),
                        " running=", opt_text(maps:get(running, Answer)), " boots=", opt_text(maps:get(boots, Answer)),
                        case maps:get(step, Answer, none) of none -> ""; S -> [" step=", atom_to_list(S)] end])),
    case file:open(log_file(), [read, write, raw, binary]) of
        {ok, Fd} -> _ = file:pwrite(Fd, Offset, Line), file:close(Fd);
        _ -> ok
    end.

%%====================================================================
%% restarts: a release made what boots without being installed
%%====================================================================

-spec prepare_restart(params()) -> answer().
prepare_restart(P) ->
    Vsn = maps:get(vsn, P),
    Prev = maps:get(previous, P),
    Before = #{permanent => permanent(), script => script_vsn(script_path(P)), start_erl => start_erl_vsn()},
    {Staged, Slot} = begin_attempt(P, Prev, Prev, Vsn),
    Outcome = try
                  step(unpack, P, fun() -> unpack(P, install, Vsn) end),
                  try
                      step(config, P, fun() -> install_config(P, install, Prev, Vsn, Staged),
                                               keep_config(Vsn, true) end),
                      step(boot, P, fun() -> mix_sys_config(P, Vsn, false), set_boot(P, Vsn) end),
                      #{result => done}
                  catch throw:{hotdeploy_fail, Step, Why} ->
                      %% what boots and the config are what they were
                      _ = (catch restore_config(Prev)),
                      _ = (catch restore_boot_files(P, Before)),
                      #{result => failed, step => Step,
                        detail => iolist_to_binary([Why, "; what boots is ", opt_text(boots(P)), " again"])}
                  end
              catch throw:{hotdeploy_fail, Step0, Why0} ->
                  drop_staged(P, Vsn),
                  #{result => failed, step => Step0, detail => Why0}
              end,
    Answer = Outcome#{running => str(running()), boots => opt(boots(P)), permanent => opt(permanent()),
                      pid_before => list_to_integer(os:getpid()), config => config_hash(),
                      record_slot => case Slot of {_, Off} -> Off; none -> null end},
    case maps:get(result, Outcome) of
        done -> ok;          % the record stays open: the gate after the restart closes it
        _ -> record_end(Slot, Prev, Vsn, Answer)
    end,
    Answer.

%% VSN (and its kept config) what boots, in the node or in a VM of its own.
-spec set_boot_op(params()) -> answer().
set_boot_op(P) ->
    Vsn = maps:get(vsn, P),
    Restored = step(config, P, fun() -> restore_config(Vsn) end),
    step(boot, P, fun() -> mix_sys_config(P, Vsn, false), set_boot(P, Vsn) end),
    #{result => done, boots => opt(boots(P)), config_restored => Restored, config => config_hash()}.

%% Make VSN what a start boots, by the files a start reads: RELEASES (VSN
%% permanent, the permanent or current one old), start_erl.data (its ERTS
%% and version), the start script (relx's bin/<rel>-<vsn> over bin/<rel>).
set_boot(P, Vsn) ->
    RelDir = filename:join(root(), "releases"),
    Releases = case file:consult(filename:join(RelDir, "RELEASES")) of
                   {ok, [Rs]} when is_list(Rs) -> Rs;
                   Bad -> fail(boot, "releases/RELEASES is not readable (~s)", [explain(Bad)])
               end,
    %% unpack_release keeps the release's ERTS there (it removes the .rel)
    Erts = case lists:keyfind(Vsn, 3, Releases) of
               {release, _, Vsn, E, _, _} -> E;
               false -> fail(boot, "~s is not unpacked on the host (not in RELEASES)", [Vsn])
           end,
    Updated = [case R of
                   {release, _, Vsn, _, _, _} -> setelement(6, R, permanent);
                   {release, _, _, _, _, S} when S =:= permanent; S =:= current -> setelement(6, R, old);
                   _ -> R
               end || R <- Releases],
    ok = write_atomically(filename:join(RelDir, "RELEASES"), io_lib:format("~p.~n", [Updated])),
    ok = write_atomically(filename:join(RelDir, "start_erl.data"), [Erts, " ", Vsn, "\n"]),
    set_script(P, Vsn).

%% Back to what booted before (a prepare_restart that failed half-way).
restore_boot_files(P, Before) ->
    case maps:get(start_erl, Before) of
        null -> ok;
        Was -> case start_erl_vsn() of
                   Was -> ok;
                   _ -> set_boot(P, Was)
               end
    end.

write_atomically(File, Data) ->
    Tmp = File ++ ".hotdeploy-tmp",
    case file:write_file(Tmp, Data) of
        ok -> file:rename(Tmp, File);
        {error, E} -> _ = file:delete(Tmp), fail(boot, "cannot write ~s: ~s", [File, explain(E)])
    end.

%% Before a restart: the app's own drain function (in the node) or a GET of
%% its drain path, then the drain time (connections finish, load balancers
%% notice).
-spec drain(params()) -> answer().
drain(P) ->
    Said = case {maps:get(drain_mfa, P, none), maps:get(drain_path, P, none)} of
               {{M, F, A}, _} ->
                   step(drain, P, fun() ->
                       Self = self(),
                       {Pid, Ref} = spawn_monitor(fun() -> Self ! {self(), catch apply(M, F, A)} end),
                       receive
                           {Pid, R} -> erlang:demonitor(Ref, [flush]), short(R);
                           {'DOWN', Ref, _, _, Why} -> fail(drain, "~s:~s died: ~s", [M, F, explain(Why)])
                       after 30000 -> exit(Pid, kill), fail(drain, "~s:~s did not return within 30 s", [M, F])
                       end end);
               {none, none} -> <<>>;
               {none, Path} ->
                   H = maps:get(health, P),
                   case http_get(maps:get(port, H), Path) of
                       {Code, Body} when is_integer(Code) -> words("~b ~s", [Code, Body]);
                       {error, E} -> fail(drain, "~s answered ~s", [Path, http_error(E)])
                   end
           end,
    timer:sleep(maps:get(drain_ms, P, 0)),
    #{result => done, detail => Said}.

%%====================================================================
%% mix releases: sys.config rebuilt as a boot would
%%====================================================================

%% The environment's runtime.config over a config, as the kernel reads a
%% config file that names another: per application, key by key.
merge_config(Base, Over) ->
    lists:foldl(fun({App, Kvs}, Acc) when is_atom(App), is_list(Kvs) ->
                        Old = proplists:get_value(App, Acc, []),
                        New = lists:foldl(fun({K, V}, A) -> lists:keystore(K, 1, A, {K, V});
                                             (_, A) -> A end, Old, Kvs),
                        lists:keystore(App, 1, Acc, {App, New});
                   (_, Acc) -> Acc end, Base, Over).

%% A mix release's sys.config holds the build's config only (relx's names
%% runtime.config itself). Before release_handler reads it to set the new
%% application env, and before a first boot, rebuild it as the release's
%% own boot would: the build's config (kept as sys.config.build), the
%% environment's runtime.config, then (in a running node: a boot does that
%% itself) config/runtime.exs evaluated here; otherwise an install drops
%% every value those set. The header line stays, so a boot evaluates
%% runtime.exs again. False for a relx release (nothing to do).
mix_sys_config(P, Vsn, WithExs) ->
    Dir = filename:join([root(), "releases", Vsn]),
    Sys = filename:join(Dir, "sys.config"),
    Build = Sys ++ ".build",
    Text = case file:read_file(case filelib:is_regular(Build) of true -> Build; false -> Sys end) of
               {ok, T} -> T;
               _ -> <<>>
           end,
    %% mix writes its start script's switch in the leading comment lines
    {Comments, _} = lists:splitwith(fun(L) -> binary:match(L, <<"%%">>) =:= {0, 2} end,
                                    binary:split(Text, <<"\n">>, [global])),
    case lists:any(fun(L) -> binary:match(L, <<"%% RUNTIME_CONFIG=">>) =:= {0, 18} end, Comments) of
        true ->
            filelib:is_regular(Build) orelse (ok = file:write_file(Build, Text)),
            Base = case file:consult(Build) of
                       {ok, [B]} -> B;
                       Bad -> fail(install, "releases/~s/sys.config.build is not readable (~s)", [Vsn, explain(Bad)])
                   end,
            Env = case file:consult(config_file()) of {ok, [L]} when is_list(L) -> L; _ -> [] end,
            Exs = filename:join(Dir, "runtime.exs"),
            Merged = case WithExs andalso filelib:is_regular(Exs) of
                         true ->
                             FromExs = runtime_exs(Exs, Vsn),
                             put(hotdeploy_overridden, overridden(Env, FromExs)),
                             'Elixir.Config.Reader':merge(merge_config(Base, Env), FromExs);
                         false -> merge_config(Base, Env)
                     end,
            ok = file:write_file(Sys ++ ".tmp", [lists:join(<<"\n">>, Comments), "\n",
                                                 io_lib:format("~tp.~n", [Merged])]),
            ok = file:rename(Sys ++ ".tmp", Sys),
            _ = P,
            true;
        false -> false
    end.

%% The keys of the environment's runtime config that runtime.exs sets to
%% something else: runtime.exs is evaluated last and wins, silently unless
%% said ("app.key" each; the values are not said: they may be secrets).
-spec overridden(list(), list()) -> [binary()].
overridden(Env, FromExs) ->
    [iolist_to_binary(io_lib:format("~s.~s", [App, K]))
     || {App, Kvs} <- Env, is_atom(App), is_list(Kvs), {K, V} <- Kvs, is_atom(K),
        case lists:keyfind(App, 1, FromExs) of
            {App, Exs} when is_list(Exs) ->
                case lists:keyfind(K, 1, Exs) of {K, V} -> false; {K, _} -> true; false -> false end;
            _ -> false
        end].

runtime_exs(Exs, Vsn) ->
    try 'Elixir.Config.Reader':'read!'(list_to_binary(Exs), [{env, prod}, {target, host}])
    catch C:E ->
        %% the exception's kind only: its message may quote secrets
        Kind = case E of #{'__struct__' := S} -> S; _ when is_tuple(E) -> element(1, E); _ -> E end,
        fail(install, "config/runtime.exs of ~s failed in the node (~s ~s): nothing installed", [Vsn, C, short(Kind)])
    end.

%% Before a release's first start, in a VM of its own (the node is not up):
%% release_handler's RELEASES (relx's build writes it, mix's does not, and
%% a node without it fails half-way through a downgrade), then a mix
%% release's sys.config with the environment's runtime.config.
first_boot(P) ->
    Vsn = maps:get(vsn, P),
    Root = root(),
    Rel = maps:get(rel, P),
    Releases = filename:join([Root, "releases", "RELEASES"]),
    Made = case filelib:is_regular(Releases) of
               true -> false;
               false -> ok = release_handler:create_RELEASES(Root, filename:join(Root, "releases"),
                                                             filename:join([Root, "releases", Vsn, Rel ++ ".rel"]), []),
                        true
           end,
    #{result => done, releases_made => Made, sys_config_made => mix_sys_config(P, Vsn, false)}.

%%====================================================================
%% Small things
%%====================================================================

now_ms() -> erlang:monotonic_time(millisecond).

str(T) when is_binary(T) -> T;
str(T) when is_list(T) -> unicode:characters_to_binary(T);
str(T) when is_atom(T) -> atom_to_binary(T);
str(T) -> short(T).

opt(null) -> null;
opt(X) -> str(X).

%% The answer as JSON text, printable ASCII only (erl_call prints it inside
%% a string: the deployer reads it back between the quotes).
-spec json(term()) -> iodata().
json(M) when is_map(M) ->
    ["{", lists:join(",", [[json(str(K)), ":", json(V)] || {K, V} <- lists:sort(maps:to_list(M))]), "}"];
json(L) when is_list(L) -> ["[", lists:join(",", [json(E) || E <- L]), "]"];
json(true) -> "true";
json(false) -> "false";
json(null) -> "null";
json(undefined) -> "null";
json(A) when is_atom(A) -> json(atom_to_binary(A));
json(I) when is_integer(I) -> integer_to_list(I);
json(F) when is_float(F) -> float_to_list(F, [{decimals, 3}, compact]);
json(B) when is_binary(B) ->
    ["\"", [case C of
                $" -> "\\\"";
                $\\ -> "\\\\";
                _ when C >= 32, C < 127 -> C;
                _ -> io_lib:format("\\u~4.16.0b", [C])
            end || C <- unicode:characters_to_list(B)], "\""];
json(T) -> json(short(T)).
