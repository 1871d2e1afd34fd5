defmodule ExampleEx.Counter do
  # v2: the state is a map; code_change/3 converts both ways.
  use GenServer
  @vsn 2

  def start_link(_), do: GenServer.start_link(__MODULE__, [], name: __MODULE__)
  def hit, do: GenServer.call(__MODULE__, :hit)
  def describe, do: GenServer.call(__MODULE__, :describe)

  @impl true
  def init([]), do: {:ok, %{hits: 0}}

  @impl true
  def handle_call(:hit, _from, %{hits: n} = state), do: {:reply, n + 1, %{state | hits: n + 1}}
  def handle_call(:describe, _from, %{hits: n} = state), do: {:reply, "hits=#{n} shape=map\n", state}

  @impl true
  def code_change({:down, _}, %{hits: n}, _extra), do: {:ok, {:counter, n}}
  def code_change(_old_vsn, {:counter, n}, _extra), do: {:ok, %{hits: n}}
end
