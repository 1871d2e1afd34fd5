%% inets httpd callback: one call per request, no process lives in this module.
%% errors-endpoint: v2 whose greeting answers 500 to one request in ten: no
%% crash, no error log (a canary analysis must see it).
-module(example_app_web).
-export([do/1, greeting/1, version/0]).
-include_lib("inets/include/httpd.hrl").

do(#mod{method = "GET", request_uri = "/api/public/version"}) ->
    reply(version() ++ "\n");
do(#mod{method = "GET", request_uri = "/api/public/state"}) ->
    reply(lists:flatten(example_app_counter:describe()));
do(#mod{method = "GET", request_uri = "/"}) ->
    Hits = example_app_counter:hit(),
    case Hits rem 10 of
        0 -> {proceed, [{response, {500, "try again\n"}}]};
        _ -> reply(greeting(Hits))
    end;
do(_) ->
    {proceed, [{response, {404, "not found\n"}}]}.

version() ->
    {ok, Vsn} = application:get_key(example_app, vsn),
    Vsn.

greeting(Hits) ->
    {ok, Greeting} = application:get_env(example_app, greeting),
    lists:flatten(io_lib:format("~s from example_app, hot-upgraded (visit ~b)~n", [Greeting, Hits])).

reply(Body) ->
    {proceed, [{response, {200, Body}}]}.
