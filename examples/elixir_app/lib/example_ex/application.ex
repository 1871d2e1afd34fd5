defmodule ExampleEx.Application do
  use Application

  @impl true
  def start(_type, _args) do
    {:ok, sup} = Supervisor.start_link([ExampleEx.Counter], strategy: :one_for_one, name: ExampleEx.Supervisor)
    port = Application.fetch_env!(:example_ex, :port)
    # httpd calls ExampleEx.Web.do/1 by name for every request, so a new
    # version of that module serves the next request with no restart.
    {:ok, httpd} =
      :inets.start(:httpd,
        port: port,
        bind_address: :any,
        ipfamily: :inet,
        server_name: ~c"example_ex",
        server_root: ~c"/tmp",
        document_root: ~c"/tmp",
        keep_alive: true,
        max_clients: 1000,
        modules: [ExampleEx.Web]
      )

    {:ok, sup, httpd}
  end

  @impl true
  def stop(httpd), do: :inets.stop(:httpd, httpd)
end
