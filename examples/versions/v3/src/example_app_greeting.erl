%% v3: greetings get their own module (added by the upgrade with add_module).
-module(example_app_greeting).
-export([text/2]).

text(Greeting, Hits) ->
    lists:flatten(io_lib:format("~s from example_app v3 (visit ~b)~n", [Greeting, Hits])).
