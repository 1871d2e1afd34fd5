%% v3: the state map also records when the last visit happened.
-module(example_app_counter).
-vsn(3).   % the state's shape: a newer module converts down by the version it goes back to
-behaviour(gen_server).
-export([start_link/0, hit/0, describe/0]).
-export([init/1, handle_call/3, handle_cast/2, code_change/3]).

start_link() -> gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

hit() -> gen_server:call(?MODULE, hit).

describe() -> gen_server:call(?MODULE, describe).

init([]) -> {ok, #{hits => 0, last_hit => never}}.

handle_call(hit, _From, #{hits := N} = State) ->
    {reply, N + 1, State#{hits := N + 1, last_hit := erlang:system_time(second)}};
handle_call(describe, _From, #{hits := N} = State) ->
    {reply, io_lib:format("hits=~b shape=map+last_hit~n", [N]), State}.

handle_cast(_Msg, State) -> {noreply, State}.

%% Down to v1 (a host that ran v1 before this one) the state is a tuple
%% again, down to v2 a map; release_handler passes the -vsn of the module it goes back to.
code_change({down, V}, #{hits := N}, _Extra) when V =:= 1; V =:= [1] -> {ok, {counter, N}};
code_change({down, _}, #{hits := N}, _Extra) -> {ok, #{hits => N}};
code_change(_OldVsn, {counter, N}, _Extra) -> {ok, #{hits => N, last_hit => never}};
code_change(_OldVsn, #{hits := N} = State, _Extra) -> {ok, State#{hits => N, last_hit => maps:get(last_hit, State, never)}}.
