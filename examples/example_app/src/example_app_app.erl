-module(example_app_app).
-behaviour(application).
-export([start/2, stop/1]).

start(_Type, _Args) ->
    {ok, Sup} = example_app_sup:start_link(),
    {ok, Port} = application:get_env(example_app, port),
    %% httpd calls example_app_web:do/1 by name for every request, so a new
    %% version of that module serves the next request with no restart.
    {ok, Httpd} = inets:start(httpd, [{port, Port},
                                      {bind_address, any},
                                      {ipfamily, inet},
                                      {server_name, "example_app"},
                                      {server_root, "/tmp"},
                                      {document_root, "/tmp"},
                                      {keep_alive, true},
                                      {max_clients, 1000},
                                      {modules, [example_app_web]}]),
    {ok, Sup, Httpd}.

stop(Httpd) ->
    inets:stop(httpd, Httpd).
