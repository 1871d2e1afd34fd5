defmodule ExampleEx.Visit do
  # A new String.Chars implementation: Elixir consolidates protocols at build
  # time, and a hot upgrade does not load the new consolidation.
  defstruct hits: 0

  defimpl String.Chars do
    def to_string(%ExampleEx.Visit{hits: n}), do: "visit #{n}"
  end
end
