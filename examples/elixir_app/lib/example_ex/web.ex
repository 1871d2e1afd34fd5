defmodule ExampleEx.Web do
  # inets httpd callback: one call per request, no process lives in this module.
  require Record
  Record.defrecordp(:mod, Record.extract(:mod, from_lib: "inets/include/httpd.hrl"))

  def unquote(:do)(request) do
    case {mod(request, :method), mod(request, :request_uri)} do
      {~c"GET", ~c"/api/public/version"} -> reply(version() <> "\n")
      {~c"GET", ~c"/api/public/state"} -> reply(ExampleEx.Counter.describe())
      {~c"GET", ~c"/api/public/region"} -> reply("#{Application.get_env(:example_ex, :region)}\n")
      {~c"GET", ~c"/"} -> reply(greeting(ExampleEx.Counter.hit()))
      _ -> {:proceed, [response: {404, ~c"not found\n"}]}
    end
  end

  # The app's vsn is the release version (the build writes it), and the
  # application controller updates it at each hot upgrade or downgrade.
  def version, do: to_string(Application.spec(:example_ex, :vsn))

  def greeting(hits), do: "#{Application.fetch_env!(:example_ex, :greeting)} from example_ex (visit #{hits})\n"

  defp reply(body), do: {:proceed, [response: {200, String.to_charlist(body)}]}
end
