# hotdeploy's default builder for a mix app that brings no Dockerfile: the
# same Debian 12 and ERTS as the hosts, and Debian's Elixir.
# FROM resolves to the offline base image (scripts/base-image.sh).
FROM hotdeploy/debian:bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends erlang-nox erlang-dev erlang-tools elixir ca-certificates \
 && rm -rf /var/lib/apt/lists/*
ENV LANG=C.UTF-8 HOME=/root
WORKDIR /build
