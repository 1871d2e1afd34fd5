-module(example_app_tests).
-include_lib("eunit/include/eunit.hrl").

counter_test_() ->
    {setup,
     fun() -> {ok, Pid} = example_app_counter:start_link(), unlink(Pid), Pid end,
     fun(Pid) -> exit(Pid, kill) end,
     fun(_) ->
         [?_assertEqual(1, example_app_counter:hit()),
          ?_assertEqual(2, example_app_counter:hit()),
          ?_assertMatch("hits=2" ++ _, lists:flatten(example_app_counter:describe()))]
     end}.

greeting_test() ->
    application:load(example_app),
    Text = example_app_web:greeting(3),
    ?assertMatch("Hello from example_app" ++ _, Text),
    ?assert(lists:suffix("(visit 3)\n", Text)).
