%% halts-later: v2 whose node stops 20 s after the hot upgrade installed it
%% (a leak, an overload: no crash report, nothing the gate's soak can see);
%% restarted by its service manager, the node boots what is permanent.
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
code_change(_OldVsn, State, _Extra) ->
    {ok, _} = timer:apply_after(20000, erlang, halt, [1]),
    {ok, case State of {counter, N} -> #{hits => N}; _ -> State end}.
