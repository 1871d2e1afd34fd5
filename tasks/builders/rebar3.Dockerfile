# hotdeploy's default builder for a rebar3 app that brings no Dockerfile:
# the same Debian 12 and ERTS as the hosts (a hot upgrade cannot change
# ERTS, so the release's embedded ERTS must be the one the nodes run).
# FROM resolves to the offline base image (scripts/base-image.sh).
FROM hotdeploy/debian:bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends erlang-nox erlang-dev erlang-eunit erlang-tools rebar3 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
ENV LANG=C.UTF-8 HOME=/root
WORKDIR /build
