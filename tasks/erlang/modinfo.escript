#!/usr/bin/env escript
%% Usage: modinfo.escript RELNAME [PREVVSN...]   (run in the project's root,
%% after `rebar3 compile`). Prints, one tab-separated record per line, what
%% the appup planner needs to compare each previous release with the new build
%% (SIDE is `new` or `prev:PREVVSN`):
%%   erts   SIDE ERTSVSN
%%   app    SIDE APP APPVSN SRCDIR
%%   module SIDE APP MODULE MD5 FLAGS          (FLAGS: code_change, supervisor, on_load,
%%                                              b=BEHAVIOUR..., comma-separated, or -)
%%   nif    SIDE APP PATH MD5                  (each priv/**/*.so of the app: its NIFs)
%%   appup  APP VSN UPFROM[<US>UPFROM...]      (an appup the project ships; a
%%                                              regular expression as re:PATTERN;
%%                                              <US> is the byte 16#1f)
%%   supervisor SIDE APP MODULE NAME CHILDREN   (each supervisor module: the name
%%                                              it registers (- if none found),
%%                                              and the ids of the children its
%%                                              init/1 declares, as Erlang terms
%%                                              joined by <US>; `simple` for a
%%                                              simple_one_for_one, `?WHY` when
%%                                              init/1 could not be evaluated)
%%   otp    new OTPRELEASE
%% The build is under $HOTDEPLOY_BUILD (default _build/default, relx's); a mix
%% project names its own applications in $HOTDEPLOY_APPS (comma-separated).
main([RelName | Rest]) ->
    Own = own_apps(),
    out(["erts", "new", erlang:system_info(version)]),
    out(["otp", "new", erlang:system_info(otp_release)]),
    lists:foreach(fun({App, SrcDir}) ->
        Ebin = filename:join([build_dir(), "lib", App, "ebin"]),
        AppVsn = app_vsn(filename:join(Ebin, App ++ ".app")),
        out(["app", "new", App, AppVsn, SrcDir]),
        modules("new", App, Ebin),
        nifs("new", App, filename:dirname(Ebin)),
        supervisors("new", App, Ebin),
        shipped_appup(App, filename:join(SrcDir, "ebin"))
    end, Own),
    [previous(RelName, Prev, [A || {A, _} <- Own]) || Prev <- Rest],
    ok;
main(_) ->
    io:format(standard_error, "usage: modinfo.escript RELNAME [PREVVSN...]~n", []),
    halt(2).

previous(RelName, Prev, Own) ->
    Root = filename:join([build_dir(), "rel", RelName]),
    RelFile = filename:join([Root, "releases", Prev, RelName ++ ".rel"]),
    case file:consult(RelFile) of
        {ok, [{release, _, {erts, Erts}, Apps}]} ->
            Side = "prev:" ++ Prev,
            out(["erts", Side, Erts]),
            [begin
                 A = atom_to_list(element(1, T)), V = element(2, T),
                 out(["app", Side, A, V, "-"]),
                 modules(Side, A, filename:join([Root, "lib", A ++ "-" ++ V, "ebin"])),
                 nifs(Side, A, filename:join([Root, "lib", A ++ "-" ++ V])),
                 supervisors(Side, A, filename:join([Root, "lib", A ++ "-" ++ V, "ebin"]))
             end || T <- Apps, lists:member(atom_to_list(element(1, T)), Own)];
        Error ->
            io:format(standard_error, "error: cannot read ~s: ~p~n", [RelFile, Error]),
            halt(3)
    end.

build_dir() -> os:getenv("HOTDEPLOY_BUILD", "_build/default").

%% {App, SrcDir}: the appup planner writes an appup to SrcDir/ebin (a mix
%% app's is its build dir: mix copies ebin/ into the release as it is).
own_apps() ->
    case os:getenv("HOTDEPLOY_APPS", "") of
        "" -> rebar3_apps();
        Names -> [{A, filename:join([build_dir(), "lib", A])} || A <- string:lexemes(Names, ",")]
    end.

rebar3_apps() ->
    Top = [{app_name(F), "."} || F <- filelib:wildcard("src/*.app.src")],
    Umbrella = [{app_name(F), filename:dirname(filename:dirname(F))}
                || F <- filelib:wildcard("apps/*/src/*.app.src")],
    Top ++ Umbrella.

app_name(AppSrc) -> filename:basename(AppSrc, ".app.src").

app_vsn(AppFile) ->
    {ok, [{application, _, Props}]} = file:consult(AppFile),
    proplists:get_value(vsn, Props).

modules(Side, App, Ebin) ->
    lists:foreach(fun(Beam) ->
        {ok, {Mod, Md5}} = beam_lib:md5(Beam),
        {ok, {Mod, [{exports, Exports}, {attributes, Attrs}]}} =
            beam_lib:chunks(Beam, [exports, attributes]),
        Behaviours = proplists:get_value(behaviour, Attrs, []) ++
                     proplists:get_value(behavior, Attrs, []),
        Flags = [code_change || lists:member({code_change, 3}, Exports)
                                    orelse lists:member({code_change, 4}, Exports)] ++
                [supervisor || lists:member(supervisor, Behaviours)] ++
                [on_load || proplists:is_defined(on_load, Attrs)] ++
                [list_to_atom("b=" ++ atom_to_list(B)) || B <- lists:usort(Behaviours), is_atom(B)],
        out(["module", Side, App, atom_to_list(Mod), hex(Md5), flags(Flags)])
    end, lists:sort(filelib:wildcard(filename:join(Ebin, "*.beam")))).

%% The app's NIF libraries: every priv/**/*.so, by path under the app dir.
nifs(Side, App, AppDir) ->
    Priv = filename:join(AppDir, "priv"),
    [begin
         {ok, Bin} = file:read_file(filename:join(Priv, F)),
         out(["nif", Side, App, "priv/" ++ F, hex(erlang:md5(Bin))])
     end || F <- lists:sort(filelib:wildcard("**/*.so", Priv))].

shipped_appup(App, Ebin) ->
    case file:consult(filename:join(Ebin, App ++ ".appup")) of
        {ok, [{Vsn, Ups, _Downs}]} ->
            From = [case V of
                        B when is_binary(B) -> "re:" ++ binary_to_list(B);
                        _ -> V
                    end || {V, _} <- Ups],
            out(["appup", App, Vsn, string:join(From, [16#1f])]);
        _ -> ok
    end.

%% Each supervisor module's registered name and declared children, evaluated
%% here in the builder (never on a host): its init/1 is called with the
%% arguments its own supervisor:start_link({local, Name}, ?MODULE, Args)
%% passes, when they are a literal, with the app's ebin in the code path;
%% every module that loaded is purged afterwards, so the next side (another
%% version of the same modules) starts clean.
supervisors(Side, App, Ebin) ->
    Sups = [B || B <- lists:sort(filelib:wildcard(filename:join(Ebin, "*.beam"))), is_supervisor(B)],
    Loaded = [M || {M, _} <- code:all_loaded()],
    code:add_patha(Ebin),
    try
        [begin
             Mod = list_to_atom(filename:basename(B, ".beam")),
             {Name, Args} = start_call(B, Mod),
             out(["supervisor", Side, App, atom_to_list(Mod), Name, children(Mod, Args)])
         end || B <- Sups]
    after
        code:del_path(Ebin),
        [begin code:purge(M), code:delete(M), code:purge(M) end
         || {M, _} <- code:all_loaded(), not lists:member(M, Loaded)]
    end.

is_supervisor(Beam) ->
    {ok, {_, [{attributes, Attrs}]}} = beam_lib:chunks(Beam, [attributes]),
    lists:member(supervisor, proplists:get_value(behaviour, Attrs, []) ++ proplists:get_value(behavior, Attrs, [])).

%% {NameText, {ok, Args} | none}: from the module's own start_link call.
start_call(Beam, Mod) ->
    case beam_lib:chunks(Beam, [abstract_code]) of
        {ok, {_, [{abstract_code, {raw_abstract_v1, Forms}}]}} ->
            Calls = [{N, A} || {call, _, {remote, _, {atom, _, supervisor}, {atom, _, start_link}},
                                [{tuple, _, [{atom, _, local}, {atom, _, N}]}, {atom, _, M}, A]}
                                   <- forms_calls(Forms), M =:= Mod],
            case Calls of
                [{N, A} | _] -> {atom_to_list(N), try {ok, erl_parse:normalise(A)} catch _:_ -> none end};
                [] -> {"-", none}
            end;
        _ -> {"-", none}
    end.

%% Every call expression in FORMS, however deep.
forms_calls(Forms) ->
    lists:append([erl_syntax_lib_fold(F) || F <- Forms]).

erl_syntax_lib_fold(T) when is_tuple(T) ->
    Own = case T of {call, _, _, _} -> [T]; _ -> [] end,
    Own ++ lists:append([erl_syntax_lib_fold(E) || E <- tuple_to_list(T)]);
erl_syntax_lib_fold(L) when is_list(L) -> lists:append([erl_syntax_lib_fold(E) || E <- L]);
erl_syntax_lib_fold(_) -> [].

children(_, none) -> "?its start_link arguments are not a literal";
children(Mod, {ok, Args}) ->
    Self = self(),
    {Pid, Ref} = spawn_monitor(fun() -> Self ! {self(), catch Mod:init(Args)} end),
    receive
        {Pid, {ok, {Flags, Specs}}} ->
            erlang:demonitor(Ref, [flush]),
            case strategy(Flags) of
                simple_one_for_one -> "simple";
                _ -> string:join([lists:flatten(io_lib:format("~0p", [child_id(S)])) || S <- Specs], [16#1f])
            end;
        {Pid, ignore} -> erlang:demonitor(Ref, [flush]), "";
        {Pid, Other} -> erlang:demonitor(Ref, [flush]), "?init/1 returned " ++ short(Other);
        {'DOWN', Ref, _, _, Why} -> "?init/1 failed: " ++ short(Why)
    after 2000 -> exit(Pid, kill), "?init/1 did not return within 2 s"
    end.

strategy(#{strategy := S}) -> S;
strategy(F) when is_map(F) -> one_for_one;
strategy({S, _, _}) -> S.

child_id(#{id := Id}) -> Id;
child_id(T) when is_tuple(T) -> element(1, T).

short(T) -> [case C of $\t -> $\s; $\n -> $\s; _ -> C end
             || C <- lists:sublist(lists:flatten(io_lib:format("~0P", [T, 8])), 120)].

flags([]) -> "-";
flags(Fs) -> string:join([atom_to_list(F) || F <- Fs], ",").

hex(Bin) -> lists:flatten([io_lib:format("~2.16.0b", [B]) || <<B>> <= Bin]).

out(Fields) -> io:format("~s~n", [string:join(Fields, "\t")]).
