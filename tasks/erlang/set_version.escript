#!/usr/bin/env escript
%% Usage: set_version.escript RELNAME VSN   (run in the project's root)
%% Writes the release version into rebar.config's relx release and into the
%% vsn of each of the project's own applications, so the running app can
%% report the release version and every release changes the app's vsn
%% (which is what makes systools include it in the relup).
main([RelName, Vsn]) ->
    Rel = list_to_atom(RelName),
    {ok, Terms} = file:consult("rebar.config"),
    Relx0 = proplists:get_value(relx, Terms, []),
    Found = [R || {release, {N, _}, _} = R <- Relx0, N =:= Rel],
    Found =:= [] andalso fail("rebar.config has no relx release named ~s", [RelName]),
    Relx = [case T of
                {release, {Rel, _}, Apps} -> {release, {Rel, Vsn}, Apps};
                Other -> Other
            end || T <- Relx0],
    write_terms("rebar.config", lists:keystore(relx, 1, Terms, {relx, Relx})),
    AppSrcs = filelib:wildcard("src/*.app.src") ++ filelib:wildcard("apps/*/src/*.app.src"),
    lists:foreach(fun(F) ->
        {ok, [{application, App, Props}]} = file:consult(F),
        write_terms(F, [{application, App, lists:keystore(vsn, 1, Props, {vsn, Vsn})}])
    end, AppSrcs),
    io:format("version ~s written to rebar.config and ~b app(s)~n", [Vsn, length(AppSrcs)]);
main(_) ->
    fail("usage: set_version.escript RELNAME VSN", []).

write_terms(File, Terms) ->
    ok = file:write_file(File, [io_lib:format("~tp.~n", [T]) || T <- Terms]).

fail(Fmt, Args) ->
    io:format(standard_error, "error: " ++ Fmt ++ "~n", Args),
    halt(2).
