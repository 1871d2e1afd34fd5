-module(example_app_sup).
-behaviour(supervisor).
-export([start_link/0, init/1]).

start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

init([]) ->
    Counter = #{id => example_app_counter,
                start => {example_app_counter, start_link, []},
                modules => [example_app_counter]},
    Ticker = #{id => example_app_ticker,
               start => {example_app_ticker, start_link, []},
               modules => [example_app_ticker]},
    {ok, {#{strategy => one_for_one, intensity => 5, period => 10}, [Counter, Ticker]}}.
