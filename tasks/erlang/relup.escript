#!/usr/bin/env escript
%% Usage: relup.escript RELNAME NEWVSN PREVVSN...   (run in the project's root,
%% after the release is assembled, with each PREVVSN unpacked in BUILD/rel/RELNAME;
%% BUILD is $HOTDEPLOY_BUILD, _build/default (relx's) by default)
%% Writes releases/NEWVSN/relup going up from and down to every PREVVSN.
%% `rebar3 relup` takes one previous version only; systools takes several.
main([RelName, New | Prevs]) when Prevs =/= [] ->
    Root = filename:join([os:getenv("HOTDEPLOY_BUILD", "_build/default"), "rel", RelName]),
    Rel = fun(V) -> filename:join([Root, "releases", V, RelName]) end,
    %% every app version of every release is under lib/: systools reads
    %% their .app and .appup files from there
    Paths = filelib:wildcard(filename:join([Root, "lib", "*", "ebin"])),
    Olds = [Rel(P) || P <- Prevs],
    case systools:make_relup(Rel(New), Olds, Olds, [{path, Paths}, {outdir, filename:join([Root, "releases", New])},
                                                    silent]) of
        {ok, _Relup, Mod, Warnings} ->
            [io:format("warning: ~s", [Mod:format_warning(W)]) || W <- Warnings],
            io:format("relup ~s: up from and down to ~s~n", [New, lists:join(", ", Prevs)]);
        {error, Mod, Error} ->
            io:format(standard_error, "error: relup ~s from ~s: ~s~n",
                      [New, lists:join(", ", Prevs), Mod:format_error(Error)]),
            halt(3)
    end;
main(_) ->
    io:format(standard_error, "usage: relup.escript RELNAME NEWVSN PREVVSN...~n", []),
    halt(2).
