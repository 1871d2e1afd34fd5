#!/usr/bin/env escript
%% Usage: modinfo.escript RELNAME [PREVVSN...]   (run in the project's root,
%% after `rebar3 compile`). Prints, one tab-separated record per line, what
%% the appup planner needs to compare each previous release with the new build
%% (SIDE is `new` or `prev:PREVVSN`):
%%   erts   SIDE ERTSVSN
%%   app    SIDE APP APPVSN SRCDIR
%%   module SIDE APP MODULE MD5 FLAGS          (FLAGS: code_change,supervisor or -)
%%   appup  APP VSN UPFROM[<US>UPFROM...]      (an appup the project ships; a
%%                                              regular expression as re:PATTERN;
%%                                              <US> is the byte 16#1f)
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
                 modules(Side, A, filename:join([Root, "lib", A ++ "-" ++ V, "ebin"]))
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
                [supervisor || lists:member(supervisor, Behaviours)],
        out(["module", Side, App, atom_to_list(Mod), hex(Md5), flags(Flags)])
    end, lists:sort(filelib:wildcard(filename:join(Ebin, "*.beam")))).

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

flags([]) -> "-";
flags(Fs) -> string:join([atom_to_list(F) || F <- Fs], ",").

hex(Bin) -> lists:flatten([io_lib:format("~2.16.0b", [B]) || <<B>> <= Bin]).

out(Fields) -> io:format("~s~n", [string:join(Fields, "\t")]).
