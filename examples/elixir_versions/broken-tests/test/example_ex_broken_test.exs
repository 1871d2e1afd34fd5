defmodule ExampleExBrokenTest do
  use ExUnit.Case

  test "greeting is rude" do
    assert ExampleEx.Web.greeting(1) =~ "Go away"
  end
end
