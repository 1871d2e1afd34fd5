%% hotdeploy's per-host procedure, evaluated INSIDE the running node.
%%
%% The deployer sends this text over SSH to `erl_call -e` of the release's own
%% ERTS (a C program: no Erlang VM boots on the host), prefixed by one binding,
%% `P = #{op => ..., ...},`, built by tasks/agent.py. It runs in a process of
%% the node, so what it reports is what the node itself says: which release
%% runs, whether the supervision tree is up, whether any process crashed.
%% Its value is one JSON object, as a printable-ASCII string.
%%
%% Ops:
%%   inspect  what the node runs and knows, the start script's version, free
%%            disk, and (when P has health) what the endpoint answers.
%%   upgrade  [unpack] -> runtime config -> install (not permanent) -> gate ->
%%            permanent (release_handler + start script), or, when install or
%%            gate fail, back to the previous release, gated too.
%%   gate     the gate alone (after a first start).
%%   first_boot  before a first start, in a VM of its own (commands.on_fresh_vm):
%%            RELEASES, and a mix release's sys.config.
%%
%% Written for erl_eval: no records, no local functions, only funs bound to
%% variables; every name ends in _ so nothing clashes with P.
Now_ = fun() -> erlang:monotonic_time(millisecond) end,
Str_ = fun(T) when is_binary(T) -> T;
          (T) when is_list(T) -> unicode:characters_to_binary(T);
          (T) when is_atom(T) -> atom_to_binary(T);
          (T) -> iolist_to_binary(io_lib:format("~0P", [T, 20])) end,
Short_ = fun(T) -> B = iolist_to_binary(io_lib:format("~0P", [T, 24])),
                   case byte_size(B) > 600 of true -> <<(binary:part(B, 0, 600))/binary, "...">>; false -> B end end,
Esc_ = fun(B) -> [case C of
                      $" -> "\\\""; $\\ -> "\\\\";
                      _ when C >= 32, C < 127 -> C;
                      _ -> io_lib:format("\\u~4.16.0b", [C])
                  end || C <- unicode:characters_to_list(B)] end,
Json_ = fun Json(M) when is_map(M) ->
                ["{", lists:join(",", [[Json(Str_(K)), ":", Json(V)] || {K, V} <- lists:sort(maps:to_list(M))]), "}"];
            Json(L) when is_list(L) -> ["[", lists:join(",", [Json(E) || E <- L]), "]"];
            Json(true) -> "true"; Json(false) -> "false"; Json(null) -> "null"; Json(undefined) -> "null";
            Json(A) when is_atom(A) -> Json(atom_to_binary(A));
            Json(I) when is_integer(I) -> integer_to_list(I);
            Json(F) when is_float(F) -> float_to_list(F, [{decimals, 3}, compact]);
            Json(B) when is_binary(B) -> ["\"", Esc_(B), "\""];
            Json(T) -> Json(Short_(T)) end,
Fail_ = fun(Why) -> throw({hotdeploy_fail, Short_(Why)}) end,
Failf_ = fun(Fmt, Args) -> throw({hotdeploy_fail, iolist_to_binary(io_lib:format(Fmt, Args))}) end,
put(hotdeploy_steps, []),
put(hotdeploy_since, 0),
Steps_ = fun() -> maps:from_list(get(hotdeploy_steps)) end,
Timed_ = fun(Name, F) ->
             T0 = Now_(),
             try F() after put(hotdeploy_steps, [{Name, (Now_() - T0) / 1000} | get(hotdeploy_steps)]) end end,

Root_ = maps:get(root, P),
Rel_ = maps:get(rel, P),
App_ = maps:get(app, P),
Releases_ = fun() -> [{V, S} || {_, V, _, S} <- release_handler:which_releases()] end,
%% What runs, asked of the node: the release whose libraries are the
%% versions of the applications loaded now (release_handler updates them at
%% each install); among equals, the one installed last (current), then the
%% permanent one, then the booted one (init:script_id). Never inferred from
%% `permanent` alone: a node restarted by a stale start script boots another
%% release than the permanent one.
Running_ = fun() ->
               Rels = release_handler:which_releases(),
               Loaded = maps:from_list([{atom_to_list(A), V} || {A, _, V} <- application:loaded_applications()]),
               Fits = [{V, S} || {_, V, Libs, S} <- Rels,
                                 lists:all(fun(Lib) -> [N, LV] = string:split(Lib, "-", trailing),
                                                       maps:get(N, Loaded, LV) =:= LV end, Libs)],
               {_, Booted} = init:script_id(),
               Pick = fun(Cands) ->
                          case [V || {V, current} <- Cands] of
                              [C | _] -> C;
                              [] -> case [V || {V, permanent} <- Cands] of
                                        [Pm | _] -> Pm;
                                        [] -> case lists:keymember(Booted, 1, Cands) of
                                                  true -> Booted;
                                                  false -> case Cands of [{V1, _} | _] -> V1; [] -> Booted end
                                              end
                                    end
                          end end,
               case Fits of [] -> Pick([{V, S} || {_, V, _, S} <- Rels]); _ -> Pick(Fits) end end,
Permanent_ = fun() -> case [V || {V, permanent} <- Releases_()] of [V | _] -> V; [] -> null end end,
ScriptVsn_ = fun() ->
                 case file:read_file(filename:join([Root_, "bin", Rel_])) of
                     {ok, Text} ->
                         case re:run(Text, "^REL_VSN=\"([^\"]*)\"", [multiline, {capture, all_but_first, binary}]) of
                             {match, [V]} -> binary_to_list(V); nomatch -> null end;
                     _ -> null
                 end end,
StartErlVsn_ = fun() ->
                   case file:read_file(filename:join([Root_, "releases", "start_erl.data"])) of
                       {ok, Text} -> case string:lexemes(binary_to_list(Text), " \n") of [_, V] -> V; _ -> null end;
                       _ -> null
                   end end,
DiskFree_ = fun() ->
                Out = os:cmd("df -Pk " ++ Root_ ++ " 2>/dev/null | tail -1"),
                case string:lexemes(Out, " \n") of
                    [_, _, _, Avail | _] -> try list_to_integer(Avail) * 1024 catch _:_ -> null end;
                    _ -> null
                end end,
%% The files a restart of VSN needs, present and not empty.
FilesOk_ = fun(Vsn) ->
               Dir = filename:join([Root_, "releases", Vsn]),
               Missing0 = [F || F <- ["start.boot", "sys.config", "vm.args"],
                                filelib:file_size(filename:join(Dir, F)) =:= 0],
               Missing1 = [Lib || {_, V, Libs, _} <- release_handler:which_releases(), V =:= Vsn, Lib <- Libs,
                                  [] =:= filelib:wildcard(filename:join([Root_, "lib", Lib, "ebin", "*.app"]))],
               [list_to_binary(M) || M <- Missing0 ++ Missing1] end,

%% HTTP/1.0 GET on the node's own loopback: what a client of this host gets.
Get_ = fun(Port, Path) ->
           case gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}, {packet, raw}], 2000) of
               {ok, S} ->
                   ok = gen_tcp:send(S, ["GET ", Path, " HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"]),
                   Recv = fun Recv(Acc) -> case gen_tcp:recv(S, 0, 2000) of
                                               {ok, D} -> Recv([Acc, D]);
                                               {error, closed} -> {ok, iolist_to_binary(Acc)};
                                               {error, E} -> {error, E} end end,
                   R = Recv([]),
                   gen_tcp:close(S),
                   case R of
                       {ok, <<"HTTP/", _:3/binary, " ", Code:3/binary, _/binary>> = Resp} ->
                           [_, Body] = case binary:split(Resp, <<"\r\n\r\n">>) of [H, B] -> [H, B]; [H] -> [H, <<>>] end,
                           {binary_to_integer(Code), string:trim(Body)};
                       {ok, Other} -> {error, {not_http, binary:part(Other, 0, min(40, byte_size(Other)))}};
                       Err -> Err
                   end;
               Err -> Err
           end end,
Expect_ = fun(H, Vsn) ->
              Body = binary:replace(Str_(maps:get(body, H)), <<"{version}">>, Str_(Vsn)),
              {maps:get(status, H), Body} end,
Answers_ = fun(H, Vsn) ->
               {Status, Body} = Expect_(H, Vsn),
               case Get_(maps:get(port, H), maps:get(path, H)) of
                   {Status, Got} when Body =:= <<>>; Got =:= Body -> {true, Got};
                   {Code, Got} when is_integer(Code) -> {false, iolist_to_binary(io_lib:format("~b ~s", [Code, Got]))};
                   Err -> {false, Short_(Err)}
               end end,

%% Every child of the app's supervision tree that should run, runs: a child
%% that is not a pid (undefined, restarting) and is not temporary fails.
AppSup_ = fun() ->
              case application_controller:get_master(App_) of
                  undefined -> Failf_("application ~s is not running in the node", [App_]);
                  Master -> case application_master:get_child(Master) of
                                {Sup, _} when is_pid(Sup) -> Sup;
                                Other -> Failf_("application ~s has no top supervisor (~0p)", [App_, Other])
                            end
              end end,
%% The tree as {Sup, Path, Id, Child, Type}, depth first.
Tree_ = fun() ->
            Walk = fun Walk(Sup, Path) ->
                       Children = try supervisor:which_children(Sup)
                                  catch _:E -> [{unreadable, {error, E}, supervisor, []}] end,
                       lists:append([[{Sup, Path ++ [Id], Id, C, Type} |
                                      case C of
                                          P2 when is_pid(P2), Type =:= supervisor -> Walk(P2, Path ++ [Id]);
                                          _ -> []
                                      end] || {Id, C, Type, _} <- Children])
                   end,
            Walk(AppSup_(), []) end,
TreeProblems_ = fun() ->
                    [iolist_to_binary(io_lib:format("~0p: ~0p (~s)", [Path, Down, Restart]))
                     || {Sup, Path, Id, Down, _} <- Tree_(), not is_pid(Down),
                        Restart <- [try {ok, Spec} = supervisor:get_childspec(Sup, Id), maps:get(restart, Spec, permanent)
                                    catch _:_ -> permanent end],
                        {Down, Restart} =/= {undefined, temporary}]
                end,
%% After going back: children the failed release added (not in BEFORE, the
%% tree's {Sup, Id} before the install) are stopped and their specs deleted,
%% as the release gone back to does not know them (a supervisor's downgrade
%% keeps child specs it no longer declares).
PruneTree_ = fun(Before) ->
                 [begin
                      supervisor:terminate_child(Sup, Id),
                      supervisor:delete_child(Sup, Id)
                  end || {Sup, _, Id, _, _} <- Tree_(), not lists:member({Sup, Id}, Before)],
                 ok end,
TreeIds_ = fun() -> [{Sup, Id} || {Sup, _, Id, _, _} <- Tree_()] end,
%% After an install: children whose specs the release added are started
%% ({update, Sup, supervisor} adds a spec, never its process), with the
%% supervisor's own restart_child; one that does not start fails the upgrade.
StartNewChildren_ = fun(Before) ->
                        [case supervisor:restart_child(Sup, Id) of
                             {ok, _} -> ok;
                             {ok, _, _} -> ok;
                             {error, running} -> ok;
                             {error, restarting} -> ok;
                             {error, E} ->
                                 %% its crash report is logged by the child after it told
                                 %% the supervisor, so it can come after the way back began:
                                 %% that gate ignores it (the tree check still applies)
                                 Mod = try element(1, maps:get(start, element(2, supervisor:get_childspec(Sup, Id))))
                                       catch _:_ -> undefined end,
                                 put(hotdeploy_ignore, [Mod | case get(hotdeploy_ignore) of undefined -> []; L -> L end]),
                                 Failf_("health gate: new child ~0p of ~s's supervision tree did not "
                                        "start: ~s", [Path, App_, Short_(E)])
                         end || {Sup, Path, Id, undefined, _} <- Tree_(), not lists:member({Sup, Id}, Before),
                                (catch maps:get(restart, element(2, supervisor:get_childspec(Sup, Id)), permanent))
                                    =/= temporary],
                        ok end,

%% Error-level log events while the gate watches (crash reports, supervisor
%% reports, a gen_server terminating): a primary logger filter that forwards
%% them here, so it works whatever the node's output goes to (journald,
%% run_erl logs, /dev/null).
Collector_ = self(),
WatchLogs_ = fun() ->
                 logger:remove_primary_filter(hotdeploy_gate),
                 Filter = fun(#{level := L} = E, To) ->
                                  case logger:compare_levels(L, error) of
                                      lt -> ignore;
                                      _ -> To ! {hotdeploy_event, maps:with([level, msg, meta], E)}, ignore
                                  end end,
                 case logger:add_primary_filter(hotdeploy_gate, {Filter, Collector_}) of
                     ok -> ok;
                     Err -> Failf_("cannot watch the node's log events (~0p): the gate cannot tell, so it fails", [Err])
                 end end,
UnwatchLogs_ = fun() -> logger:remove_primary_filter(hotdeploy_gate) end,
%% Events logged before the time in hotdeploy_since (a logger timestamp) are
%% dropped: a crash report of the failed release that arrives late must not
%% fail the gate of the way back.
CrashLines_ = fun Events(Acc) ->
                  Since = get(hotdeploy_since),
                  receive {hotdeploy_event, #{meta := #{time := T}}} when T < Since ->
                      Events(Acc);
                          {hotdeploy_event, #{msg := Msg, meta := Meta}} ->
                      Text = case Msg of
                                 {report, R} -> Short_(R);
                                 {string, S} -> Short_(unicode:characters_to_binary(S));
                                 {F, A} -> Short_(catch io_lib:format(F, A))
                             end,
                      Ignored = [M || M <- case get(hotdeploy_ignore) of undefined -> []; L -> L end, is_atom(M),
                                      binary:match(Text, <<"{initial_call,{", (atom_to_binary(M))/binary, ",">>)
                                          =/= nomatch],
                      case Ignored of
                          [] -> Events([iolist_to_binary(io_lib:format("~0p: ~s", [maps:get(pid, Meta, undefined),
                                                                                   Text])) | Acc]);
                          _ -> Events(Acc)
                      end
                  after 0 -> lists:reverse(Acc) end end,

%% The gate: VSN runs, the endpoint answers it, the tree is up, and for the
%% soak no error-level event (the events since WatchLogs_ count).
Gate_ = fun(Vsn) ->
            H = maps:get(health, P),
            Deadline = Now_() + maps:get(health_timeout_ms, P),
            Wait = fun Wait() ->
                       case {Running_(), Answers_(H, Vsn)} of
                           {V, {true, _}} when V =:= Vsn -> ok;
                           {V, {_, Got}} ->
                               case Now_() > Deadline of
                                   true -> Failf_("health gate: node runs ~s; ~s answered ~s, not ~s, within ~b ms",
                                                  [V, maps:get(path, H), Got, element(2, Expect_(H, Vsn)),
                                                   maps:get(health_timeout_ms, P)]);
                                   false -> timer:sleep(200), Wait()
                               end
                       end end,
            Wait(),
            Check = fun() ->
                        case TreeProblems_() of
                            [] -> ok;
                            Problems -> Failf_("health gate: supervision tree of ~s not fully running: ~s",
                                               [App_, lists:join("; ", Problems)])
                        end,
                        case CrashLines_([]) of
                            [] -> ok;
                            Crashes -> Failf_("health gate: ~b error event(s) (crash or supervisor "
                                              "reports) in the node since the install (a code_change that does "
                                              "not match the state? a child that does not start?): ~s", [length(Crashes), hd(Crashes)])
                        end end,
            Check(),
            timer:sleep(maps:get(soak_ms, P)),
            Check() end,

%% The runtime config in force with each version is kept beside it
%% (releases/VSN/hotdeploy.runtime.config), so going back to a version -- a
%% rollback, or the way back from a failed upgrade -- brings back its config,
%% not the newer one.
ConfigFile_ = filename:join(Root_, "runtime.config"),
KeptConfig_ = fun(Vsn) -> filename:join([Root_, "releases", Vsn, "hotdeploy.runtime.config"]) end,
KeepConfig_ = fun(Vsn, Overwrite) ->
                  Kept = KeptConfig_(Vsn),
                  case Overwrite orelse not filelib:is_regular(Kept) of
                      true -> case filelib:is_regular(ConfigFile_) andalso filelib:is_dir(filename:dirname(Kept)) of
                                  true -> {ok, _} = file:copy(ConfigFile_, Kept ++ ".tmp"),
                                          ok = file:rename(Kept ++ ".tmp", Kept);
                                  false -> ok
                              end;
                      false -> ok
                  end end,
%% Back to VSN's config: true when it was kept, false when none was (the
%% current one then stays, and the answer says so).
RestoreConfig_ = fun(Vsn) ->
                     Kept = KeptConfig_(Vsn),
                     case filelib:is_regular(Kept) of
                         true -> {ok, _} = file:copy(Kept, ConfigFile_ ++ ".tmp"),
                                 ok = file:rename(ConfigFile_ ++ ".tmp", ConfigFile_),
                                 true;
                         false -> false
                     end end,
ConfigHash_ = fun() -> case file:read_file(ConfigFile_) of
                           {ok, Bin} -> list_to_binary(lists:sublist(
                                            lists:flatten([io_lib:format("~2.16.0b", [B]) || <<B>> <= erlang:md5(Bin)]), 12));
                           _ -> null
                       end end,
%% Make VSN what a restart boots: release_handler's RELEASES and
%% start_erl.data, and the start script (relx bakes REL_VSN into bin/<rel>;
%% its own install copies bin/<rel>-<vsn> over it, so do we).
Permanent0_ = fun(Vsn) ->
                  ok = case release_handler:make_permanent(Vsn) of
                           ok -> ok;
                           {error, E} -> Failf_("make_permanent(~s): ~0p", [Vsn, E])
                       end,
                  Bin = filename:join([Root_, "bin", Rel_]),
                  Versioned = Bin ++ "-" ++ Vsn,
                  case filelib:is_regular(Versioned) of
                      true ->
                          Tmp = Bin ++ ".hotdeploy-tmp",
                          {ok, _} = file:copy(Versioned, Tmp),
                          ok = file:change_mode(Tmp, 8#755),
                          ok = file:rename(Tmp, Bin);
                      false -> ok
                  end,
                  case {ScriptVsn_(), StartErlVsn_()} of
                      {S, E2} when (S =:= null orelse S =:= Vsn) andalso (E2 =:= null orelse E2 =:= Vsn) -> ok;
                      {S, E2} -> Failf_("~s is permanent but a restart would boot another release "
                                        "(bin/~s says ~s, start_erl.data says ~s)", [Vsn, Rel_, S, E2])
                  end,
                  KeepConfig_(Vsn, true) end,
Opt_ = fun(null) -> null; (X) -> Str_(X) end,
%% One line per step in <root>/hotdeploy.log on the host itself, so a host
%% never holds a half-done upgrade without a record of it.
Record_ = fun(What) ->
              case maps:get(record, P, none) of
                  none -> ok;
                  Prefix -> file:write_file(filename:join(Root_, "hotdeploy.log"), [Prefix, " ", What, "\n"], [append])
              end end,
Inspect_ = fun() ->
               Facts = #{node => node(), os_pid => list_to_integer(os:getpid()),
                         releases => [#{vsn => Str_(V), status => S} || {V, S} <- Releases_()],
                         running => Str_(Running_()), permanent => Opt_(Permanent_()),
                         booted => Str_(element(2, init:script_id())),
                         start_script => Opt_(ScriptVsn_()), start_erl => Opt_(StartErlVsn_()),
                         disk_free => DiskFree_(),
                         app_vsn => case application:get_key(App_, vsn) of {ok, AV} -> Str_(AV); _ -> null end,
                         otp_release => Str_(erlang:system_info(otp_release)),
                         %% another pid after an install means the node restarted its applications
                         app_sup => case catch AppSup_() of
                                        Sup when is_pid(Sup) -> list_to_binary(pid_to_list(Sup));
                                        _ -> null
                                    end,
                         erts => Str_(erlang:system_info(version)),
                         config => ConfigHash_()},
               Files = case maps:get(target, P, undefined) of
                           undefined -> #{};
                           T -> #{target_missing => FilesOk_(T)}
                       end,
               Health = case maps:get(health, P, undefined) of
                            undefined -> #{};
                            H -> {Ok, Got} = Answers_(H, Running_()), #{answers => Ok, answer => Got}
                        end,
               maps:merge(maps:merge(Facts, Files), Health) end,

Config_ = fun(Staged) ->
              Final = ConfigFile_,
              case file:consult(Staged) of
                  {ok, [L]} when is_list(L) -> ok = file:rename(Staged, Final);
                  Bad ->
                      file:delete(Staged),
                      %% Only a line number: the file holds secrets.
                      Failf_("the environment's runtime_config is not valid Erlang config (~s); nothing installed",
                             [case Bad of
                                  {ok, _} -> "it must hold exactly one list of {App, Env} terms";
                                  {error, {Line, _, _}} -> io_lib:format("syntax error at line ~p", [Line]);
                                  {error, E} -> file:format_error(E)
                              end])
              end end,

%% unpack_release, and on failure remove what it wrote (new lib/ dirs,
%% releases/VSN with the package) so a rerun starts clean.
Unpack_ = fun(Package, Vsn) ->
              LibDir = filename:join(Root_, "lib"),
              {ok, LibBefore} = file:list_dir(LibDir),
              case catch release_handler:unpack_release(Package) of
                  {ok, Vsn} -> ok;
                  Bad ->
                      {ok, LibAfter} = file:list_dir(LibDir),
                      New = LibAfter -- LibBefore,
                      [file:del_dir_r(filename:join(LibDir, D)) || D <- New],
                      file:del_dir_r(filename:join([Root_, "releases", Vsn])),
                      Failf_("unpacking ~s failed: ~s; removed what it wrote (releases/~s, ~b lib dir(s))",
                             [Vsn, Short_(Bad), Vsn, length(New)])
              end,
              case FilesOk_(Vsn) of
                  [] -> ok;
                  Missing -> Failf_("unpacked ~s is missing ~s", [Vsn, lists:join(", ", Missing)])
              end end,

%% The environment's runtime.config over a config, as the kernel reads a
%% config file that names another: per application, key by key.
MergeConfig_ = fun(Base, Over) ->
                   lists:foldl(fun({App, Kvs}, Acc) when is_atom(App), is_list(Kvs) ->
                                       Old = proplists:get_value(App, Acc, []),
                                       New = lists:foldl(fun({K, V}, A) -> lists:keystore(K, 1, A, {K, V});
                                                            (_, A) -> A end, Old, Kvs),
                                       lists:keystore(App, 1, Acc, {App, New});
                                  (_, Acc) -> Acc end, Base, Over) end,
%% A mix release's sys.config holds the build's config only (relx's names
%% runtime.config itself). Before release_handler reads it to set the new
%% application env, and before a first boot, rebuild it as the release's own
%% boot would: the build's config (kept as sys.config.build), the
%% environment's runtime.config, then (in a running node: a boot does that
%% itself) config/runtime.exs evaluated here; otherwise an install drops
%% every value those set. The header line stays, so a boot evaluates
%% runtime.exs again. False for a relx release (nothing to do).
MixSysConfig_ = fun(Vsn, WithExs) ->
    Dir = filename:join([Root_, "releases", Vsn]),
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
            Header = lists:join(<<"\n">>, Comments),
            {ok, [Base]} = file:consult(Build),
            Env = case file:consult(ConfigFile_) of {ok, [L]} when is_list(L) -> L; _ -> [] end,
            Exs = filename:join(Dir, "runtime.exs"),
            Merged = case WithExs andalso filelib:is_regular(Exs) of
                         true ->
                             Runtime = try 'Elixir.Config.Reader':'read!'(list_to_binary(Exs), [{env, prod}, {target, host}])
                                       catch C:E -> %% the exception's kind only: its message may quote secrets
                                           Kind = case E of #{'__struct__' := S} -> S; _ when is_tuple(E) -> element(1, E); _ -> E end,
                                           Failf_("config/runtime.exs of ~s failed in the node (~s ~s): nothing installed",
                                                  [Vsn, C, Short_(Kind)])
                                       end,
                             'Elixir.Config.Reader':merge(MergeConfig_(Base, Env), Runtime);
                         false -> MergeConfig_(Base, Env)
                     end,
            ok = file:write_file(Sys ++ ".tmp", [Header, "\n", io_lib:format("~tp.~n", [Merged])]),
            ok = file:rename(Sys ++ ".tmp", Sys),
            true;
        false -> false
    end end,
%% Before a release's first start, in a VM of its own (the node is not up):
%% release_handler's RELEASES (relx's build writes it, mix's does not, and a
%% node without it fails half-way through a downgrade), then a mix
%% release's sys.config with the environment's runtime.config.
FirstBoot_ = fun() ->
    Vsn = maps:get(vsn, P),
    Releases = filename:join([Root_, "releases", "RELEASES"]),
    Made = case filelib:is_regular(Releases) of
               true -> false;
               false -> ok = release_handler:create_RELEASES(Root_, filename:join(Root_, "releases"),
                                                             filename:join([Root_, "releases", Vsn, Rel_ ++ ".rel"]), []),
                        true
           end,
    #{result => done, releases_made => Made, sys_config_made => MixSysConfig_(Vsn, false)} end,

%% install_release in a process of its own, bounded: release_handler says
%% {error, _} for a relup it cannot apply and nothing changes.
Install_ = fun(Vsn) ->
               Timed_(sys_config, fun() -> MixSysConfig_(Vsn, true) end),
               case release_handler:check_install_release(Vsn) of
                   {ok, _, _} -> ok;
                   {error, CE} -> Failf_("check_install_release(~s): ~0p", [Vsn, CE])
               end,
               Parent = self(),
               Ref = make_ref(),
               {_, MRef} = spawn_monitor(fun() ->
                   Parent ! {Ref, catch release_handler:install_release(Vsn, [{update_paths, true}])} end),
               Limit = maps:get(install_timeout_ms, P),
               receive
                   {Ref, {ok, _, _}} -> erlang:demonitor(MRef, [flush]), ok;
                   {Ref, Other} -> erlang:demonitor(MRef, [flush]), Failf_("install_release(~s): ~s", [Vsn, Short_(Other)]);
                   {'DOWN', MRef, _, _, Why} -> Failf_("install_release(~s) died: ~s", [Vsn, Short_(Why)])
               after Limit -> Failf_("install_release(~s) did not finish within ~b ms", [Vsn, Limit])
               end end,

Upgrade_ = fun() ->
               Vsn = maps:get(vsn, P),
               Prev = maps:get(previous, P),
               Mode = maps:get(mode, P),
               WasPermanent = Permanent_(),
               Pid = list_to_integer(os:getpid()),
               Base = #{pid_before => Pid, from => Str_(Running_()), to => Str_(Vsn)},
               case {Mode, Running_()} of
                   {install, Prev} -> ok;
                   {finish, Vsn} -> ok;
                   {_, Now} -> Failf_("the node runs ~s, not ~s as it did at preflight (another deploy?): "
                                      "nothing done", [Now, case Mode of install -> Prev; finish -> Vsn end])
               end,
               %% the config in force with what runs now, kept before it is replaced
               case Mode of install -> KeepConfig_(Prev, false); finish -> ok end,
               ConfigNote = case {maps:get(config, P, none), maps:get(config_back, P, false)} of
                   {none, true} when Mode =:= install ->
                       case RestoreConfig_(Vsn) of
                           true -> <<>>;
                           false -> iolist_to_binary(io_lib:format("; no runtime config was kept for ~s: the "
                                                                   "current one stays", [Vsn]))
                       end;
                   {none, _} -> <<>>;
                   {Staged, _} -> Timed_(config, fun() -> Config_(Staged) end), <<>>
               end,
               case {Mode, maps:get(package, P, none), lists:keymember(Vsn, 1, Releases_())} of
                   {install, Package, false} when Package =/= none ->
                       Timed_(unpack, fun() -> Unpack_(Package, Vsn) end);
                   {install, _, false} -> Failf_("~s is not unpacked on the host and no package was sent", [Vsn]);
                   _ -> ok
               end,
               TreeBefore = TreeIds_(),
               WatchLogs_(),
               Record_(io_lib:format("from=~s to=~s result=begin", [Prev, Vsn])),
               Outcome = try
                   case Mode of
                       install -> Timed_(install, fun() -> Install_(Vsn) end),
                                  Timed_(new_children, fun() -> StartNewChildren_(TreeBefore) end);
                       finish -> ok
                   end,
                   Timed_(gate, fun() -> Gate_(Vsn) end),
                   Timed_(permanent, fun() -> Permanent0_(Vsn) end),
                   #{result => done, detail => ConfigNote}
               catch throw:{hotdeploy_fail, Why} ->
                   case init:get_status() of
                   {stopping, _} ->
                       %% release_handler answers an install that failed mid-relup by
                       %% restarting the node (init:restart); this process dies with it.
                       #{result => node_restarting, detail => Why};
                   _ ->
                   %% Back to what ran, gated like an upgrade: only then "rolled back".
                   put(hotdeploy_since, logger:timestamp()),
                   CrashLines_([]),
                   try
                       RestoreConfig_(Prev),
                       case Running_() of
                           Prev -> ok;
                           _ -> Timed_(back, fun() -> Install_(Prev) end)
                       end,
                       PruneTree_(TreeBefore),
                       Timed_(back_gate, fun() -> Gate_(Prev) end),
                       case WasPermanent of
                           Prev -> Permanent0_(Prev);
                           _ -> ok
                       end,
                       #{result => rolled_back, detail => iolist_to_binary([Why, "; back on ", Prev])}
                   catch throw:{hotdeploy_fail, Why2} ->
                       #{result => failed,
                         detail => iolist_to_binary(io_lib:format("~s; going back to ~s failed too: ~s; the node runs ~s: "
                                                                  "needs attention", [Why, Prev, Why2, Running_()]))}
                   end
                   end
               after
                   UnwatchLogs_()
               end,
               After = try Str_(Running_()) catch _:_ -> null end,
               catch Record_(io_lib:format("from=~s to=~s result=~s running=~s",
                                           [Prev, Vsn, maps:get(result, Outcome), After])),
               maps:merge(Base, Outcome#{running => After, pid_after => list_to_integer(os:getpid()),
                                         permanent => try Opt_(Permanent_()) catch _:_ -> null end,
                                         config => ConfigHash_()}) end,

%% A node still booting answers erl_call before release_handler runs: wait
%% for init to say the boot is done (a fresh start, a restart).
Booted_ = fun() ->
              Until = Now_() + maps:get(boot_wait_ms, P, 15000),
              Wait = fun Wait() ->
                         case init:get_status() of
                             {started, _} -> ok;
                             Status -> case Now_() > Until of
                                           true -> Failf_("the node is not booted (~0p)", [Status]);
                                           false -> timer:sleep(100), Wait()
                                       end
                         end end,
              Wait() end,
Result_ = try
              maps:get(op, P) =:= first_boot orelse Booted_(),
              case maps:get(op, P) of
                  first_boot -> FirstBoot_();
                  inspect -> Inspect_();
                  upgrade -> Upgrade_();
                  gate -> WatchLogs_(),
                          try Timed_(gate, fun() -> Gate_(maps:get(vsn, P)) end), #{result => done}
                          after UnwatchLogs_() end
              end
          catch throw:{hotdeploy_fail, Failure} -> #{result => failed, detail => Failure};
                Class:Reason:Stack ->
                    case init:get_status() of
                        {stopping, _} -> #{result => node_restarting, detail => Short_(Reason)};
                        _ -> #{result => failed, detail => Short_({Class, Reason, lists:sublist(Stack, 2)})}
                    end
          end,
binary_to_list(iolist_to_binary(Json_(Result_#{steps => Steps_()}))).
