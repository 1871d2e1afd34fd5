%% new-worker: v2 plus a supervised worker that counts ticks. Its child spec
%% is new, so a hot upgrade must start it: the gate checks that it runs.
-module(example_app_ticker).
-behaviour(gen_server).
-export([start_link/0, init/1, handle_call/3, handle_cast/2, handle_info/2]).

start_link() -> gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

init([]) -> {ok, 0}.

handle_call(ticks, _From, N) -> {reply, N, N}.

handle_cast(_Msg, N) -> {noreply, N}.

handle_info(_Msg, N) -> {noreply, N + 1}.
