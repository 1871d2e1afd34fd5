%% broken-worker: v2 plus a supervised worker (as new-worker) whose init fails:
%% its new child cannot start, so the upgrade must fail and the host go back.

-module(example_app_ticker).
-behaviour(gen_server).
-export([start_link/0, init/1, handle_call/3, handle_cast/2]).

start_link() -> gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

init([]) -> {stop, no_ticker_config}.

handle_call(_Msg, _From, N) -> {reply, N, N}.

handle_cast(_Msg, N) -> {noreply, N}.
