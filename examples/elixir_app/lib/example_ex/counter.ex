defmodule ExampleEx.Counter do
  # Holds the service's state: how many greetings it served. v1 keeps it as
  # a tuple; later versions convert it in code_change/3.
  use GenServer
  # the state's shape: a newer module converts down by the version it goes back to
  @vsn 1

  def start_link(_), do: GenServer.start_link(__MODULE__, [], name: __MODULE__)
  def hit, do: GenServer.call(__MODULE__, :hit)
  def describe, do: GenServer.call(__MODULE__, :describe)

  @impl true
  def init([]), do: {:ok, {:counter, 0}}

  @impl true
  def handle_call(:hit, _from, {:counter, n}), do: {:reply, n + 1, {:counter, n + 1}}
  def handle_call(:describe, _from, {:counter, n} = state), do: {:reply, "hits=#{n} shape=tuple\n", state}

  @impl true
  def code_change(_old_vsn, state, _extra), do: {:ok, state}
end
