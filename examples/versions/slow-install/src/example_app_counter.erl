%% slow-install: v2 whose code_change takes 2 s (under the 5 s release_handler
%% allows): an install slower than the deployer waits for, which still finishes.
%% v2: the state becomes a map. code_change/3 converts it both ways; on a
%% downgrade it runs in this (newer) code, so it matches on the state's shape.
-module(example_app_counter).
-vsn(2).   % the state's shape: a newer module converts down by the version it goes back to
-behaviour(gen_server).
-export([start_link/0, hit/0, describe/0]).
-export([init/1, handle_call/3, handle_cast/2, code_change/3]).

start_link() -> gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

hit() -> gen_server:call(?MODULE, hit).

describe() -> gen_server:call(?MODULE, describe).

init([]) -> {ok, #{hits => 0}}.

handle_call(hit, _From, #{hits := N} = State) ->
    {reply, N + 1, State#{hits := N + 1}};
handle_call(describe, _From, #{hits := N} = State) ->
    {reply, io_lib:format("hits=~b shape=map~n", [N]), State}.

handle_cast(_Msg, State) -> {noreply, State}.

code_change({down, _}, #{hits := N}, _Extra) -> {ok, {counter, N}};
code_change(_OldVsn, State, _Extra) -> timer:sleep(2000), {ok, as_map(State)}.

as_map({counter, N}) -> #{hits => N};
as_map(State) -> State.
