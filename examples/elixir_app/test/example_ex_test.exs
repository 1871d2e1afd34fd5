defmodule ExampleExTest do
  use ExUnit.Case

  test "greeting is polite" do
    assert ExampleEx.Web.greeting(1) =~ ~r/^Hello.* from example_ex.*\(visit 1\)/
  end

  test "the counter counts" do
    first = ExampleEx.Counter.hit()
    assert ExampleEx.Counter.hit() == first + 1
  end
end
