%% nif: the example app's native code, loaded with this module.
-module(example_app_nif).
-export([native/0]).
-on_load(init/0).

init() ->
    erlang:load_nif(filename:join(code:priv_dir(example_app), "example_app_nif"), 0).

%% Replaced by the NIF library when it loads.
native() -> erlang:nif_error(not_loaded).
