"""A real local fleet for the demo, the tests and the benchmarks.

Each host is a network namespace on a bridge (198.18.0.0/24, a range reserved
for benchmarking) with its own sshd (key-only, its own ed25519 host key), its
own /root, /srv and /tmp (a private mount namespace), and an nftables table
that enforces the EC2 security group's tcp/22 rules, so SSH only works while
an ingress rule allows it. The EC2 side lives in moto's server.
"""
