%% inets httpd callback: one call per request, no process lives in this module.
%% bad-health: v3 whose version endpoint lies on a host that has /tmp/break-health,
%% to prove that a failed health gate rolls that host back by itself.
-module(example_app_web).
-export([do/1, greeting/1, version/0]).
-include_lib("inets/include/httpd.hrl").

do(#mod{method = "GET", request_uri = "/api/public/version"}) ->
    reply(version() ++ "\n");
do(#mod{method = "GET", request_uri = "/api/public/state"}) ->
    reply(lists:flatten(example_app_counter:describe()));
do(#mod{method = "GET", request_uri = "/"}) ->
    reply(greeting(example_app_counter:hit()));
do(_) ->
    {proceed, [{response, {404, "not found\n"}}]}.

version() ->
    case filelib:is_file("/tmp/break-health") of
        true -> "0.0.0-broken";
        false -> real_version()
    end.

real_version() ->
    {ok, Vsn} = application:get_key(example_app, vsn),
    Vsn.

greeting(Hits) ->
    {ok, Greeting} = application:get_env(example_app, greeting),
    example_app_greeting:text(Greeting, Hits).

reply(Body) ->
    {proceed, [{response, {200, Body}}]}.
