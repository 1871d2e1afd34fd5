%% A change whose tests fail: `release` must stop before building anything.
-module(example_app_broken_tests).
-include_lib("eunit/include/eunit.hrl").

greeting_is_polite_test() ->
    ?assertEqual("Good day\n", example_app_web:greeting(1)).
