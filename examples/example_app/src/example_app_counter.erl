%% Holds the service's state: how many greetings it served.
%% v1 keeps it as a tuple; later versions convert it in code_change/3.
-module(example_app_counter).
-vsn(1).   % the state's shape: a newer module converts down by the version it goes back to
-behaviour(gen_server).
-export([start_link/0, hit/0, describe/0]).
-export([init/1, handle_call/3, handle_cast/2, code_change/3]).

start_link() -> gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

hit() -> gen_server:call(?MODULE, hit).

describe() -> gen_server:call(?MODULE, describe).

init([]) -> {ok, {counter, 0}}.

handle_call(hit, _From, {counter, N}) ->
    {reply, N + 1, {counter, N + 1}};
handle_call(describe, _From, {counter, N} = State) ->
    {reply, io_lib:format("hits=~b shape=tuple~n", [N]), State}.

handle_cast(_Msg, State) -> {noreply, State}.

code_change(_OldVsn, State, _Extra) -> {ok, State}.
