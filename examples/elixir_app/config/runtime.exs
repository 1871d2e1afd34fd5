import Config

# Evaluated inside the node at boot, and again by hotdeploy at each hot
# upgrade or downgrade (the release's sys.config alone would lose it).
config :example_ex, region: System.get_env("EXAMPLE_REGION", "local")
