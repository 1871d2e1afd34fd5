import Config

# Built-in defaults; the environment's runtime.config (hotdeploy) and
# config/runtime.exs (at boot and at every hot upgrade) come on top.
config :example_ex, port: 8080, greeting: "Hello"
config :logger, level: :notice
