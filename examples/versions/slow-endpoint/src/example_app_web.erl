%% inets httpd callback: one call per request, no process lives in this module.
%% slow-endpoint: v2 whose greeting takes 100 ms longer: no crash, no error log,
%% only slower (a canary analysis must see it, on a busy machine too: the
%% baseline's p50 would have to pass 100 ms to hide it).
-module(example_app_web).
-export([do/1, greeting/1, version/0]).
-include_lib("inets/include/httpd.hrl").

do(#mod{method = "GET", request_uri = "/api/public/version"}) ->
    reply(version() ++ "\n");
do(#mod{method = "GET", request_uri = "/api/public/state"}) ->
    reply(lists:flatten(example_app_counter:describe()));
do(#mod{method = "GET", request_uri = "/"}) ->
    timer:sleep(100),
    reply(greeting(example_app_counter:hit()));
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
