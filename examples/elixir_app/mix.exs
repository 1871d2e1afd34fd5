# The Elixir example service hotdeploy ships. OTP and Elixir only: hex.pm is
# not reachable, so no dependencies.
defmodule ExampleEx.MixProject do
  use Mix.Project

  def project do
    [
      app: :example_ex,
      # A placeholder: hotdeploy's build writes the release version here.
      version: "0.0.0",
      elixir: "~> 1.14",
      deps: [],
      releases: [
        example_ex: [include_executables_for: [:unix], strip_beams: false]
      ]
    ]
  end

  # sasl: release_handler, which does the hot upgrade, is part of it.
  def application do
    [mod: {ExampleEx.Application, []}, extra_applications: [:logger, :sasl, :inets]]
  end
end
