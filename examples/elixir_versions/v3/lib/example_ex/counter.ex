defmodule ExampleEx.Counter do
  # v3: the state map also records when the last visit happened.
  use GenServer
  @vsn 3

  def start_link(_), do: GenServer.start_link(__MODULE__, [], name: __MODULE__)
  def hit, do: GenServer.call(__MODULE__, :hit)
  def describe, do: GenServer.call(__MODULE__, :describe)

  @impl true
  def init([]), do: {:ok, %{hits: 0, last_hit: :never}}

  @impl true
  def handle_call(:hit, _from, %{hits: n} = state),
    do: {:reply, n + 1, %{state | hits: n + 1, last_hit: System.system_time(:second)}}

  def handle_call(:describe, _from, %{hits: n} = state), do: {:reply, "hits=#{n} shape=map+last_hit\n", state}

  # Down to v1 (a host that ran v1 before this one) the state is a tuple
  # again, down to v2 a map; release_handler passes the @vsn of the module it goes back to.
  @impl true
  def code_change({:down, v}, %{hits: n}, _extra) when v in [1, [1]], do: {:ok, {:counter, n}}
  def code_change({:down, _}, %{hits: n}, _extra), do: {:ok, %{hits: n}}
  def code_change(_old_vsn, {:counter, n}, _extra), do: {:ok, %{hits: n, last_hit: :never}}
  def code_change(_old_vsn, %{hits: n} = state, _extra), do: {:ok, Map.merge(%{last_hit: :never}, %{state | hits: n})}
end
