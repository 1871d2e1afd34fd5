#!/usr/bin/env bash
# Baseline for the pipeline benchmark: the seed's scripts, no orchestration.
# The same steps as `ship`, each timed: docker run (tests), S3 calls through
# the same moto endpoint, one process each like the aws CLI (s3.py), docker run
# (build with relup), sha256sum, S3 puts, the ingress rule with one boto3
# call each way (standing in for the aws CLI), and `xargs -P` over hosts with
# upgrade_host.sh. Prints one JSON object of seconds per step.
# env: WS (the app checkout), IMAGE, MOTO (endpoint), BUCKET, APP, VSN,
#      HOSTS (space-separated), KEY, KNOWN_HOSTS, ROOT, REL, MOTO, GROUP, CIDR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
helpers=$(cd "$here/../tasks/erlang" && pwd)
now() { date +%s.%N; }
declare -A t
step() { local name=$1; shift; local s; s=$(now); "$@"; t[$name]=$(awk -v a="$(now)" -v b="$s" "BEGIN{printf \"%.3f\", a-b}"); }
run() { docker run --rm --network none -u "$(id -u):$(id -g)" -e HOME=/tmp -v "$WS:/build" -v "$helpers:/hotdeploy:ro" -w /build "$IMAGE" sh -ec "$1" >/dev/null; }

tests() { run "rebar3 eunit"; }
s3() { "$PY" "$here/s3.py" "$@"; }
fetch_previous() {
  prev=$(s3 cat "$APP/VERSION")
  s3 get "$APP/$prev.tar.gz" "$WS/prev.tar.gz"
  want=$(s3 cat "$APP/$prev.tar.gz.sha256" | cut -d' ' -f1)
  [ "$(sha256sum "$WS/prev.tar.gz" | cut -d' ' -f1)" = "$want" ]
  mkdir -p "$WS/_build/default/rel/$REL" && tar -xzf "$WS/prev.tar.gz" -C "$WS/_build/default/rel/$REL"
}
build() {
  run "escript /hotdeploy/set_version.escript $REL $VSN && rebar3 compile && escript /hotdeploy/modinfo.escript $REL $prev > modinfo.tsv"
  "$PY" "$here/write_appups.py" "$WS/modinfo.tsv" "$WS"
  run "rebar3 release -n $REL && rebar3 relup -n $REL -v $VSN -u $prev && rebar3 tar -n $REL -v $VSN"
  tarball="$WS/_build/default/rel/$REL/$REL-$VSN.tar.gz"
}
verify() { sum=$(sha256sum "$tarball" | cut -d' ' -f1); tar -tzf "$tarball" > "$WS/list"; grep -q "releases/$VSN/relup" "$WS/list"; }
publish() {
  s3 put "$tarball" "$APP/$VSN.tar.gz"
  echo "$sum  $VSN.tar.gz" > "$WS/sum" && s3 put "$WS/sum" "$APP/$VSN.tar.gz.sha256"
  echo "{\"version\": \"$VSN\"}" > "$WS/manifest" && s3 put "$WS/manifest" "$APP/$VSN.manifest.json"
  printf %s "$VSN" > "$WS/pointer" && s3 put "$WS/pointer" "$APP/VERSION"
}
ingress() { "$PY" -c "import boto3,sys; boto3.client('ec2',endpoint_url='$MOTO',region_name='us-east-1',aws_access_key_id='x',aws_secret_access_key='x').${1}_security_group_ingress(GroupId='$GROUP',IpPermissions=[{'IpProtocol':'tcp','FromPort':22,'ToPort':22,'IpRanges':[{'CidrIp':'$CIDR'}]}])"; }
upgrade() { printf '%s\n' $HOSTS | xargs -P 64 -I{} bash "$here/upgrade_host.sh" {} "$VSN" "$tarball"; }

step test tests
step fetch_previous fetch_previous
step build build
step verify verify
step publish publish
step authorize ingress authorize
step upgrade upgrade
step revoke ingress revoke
printf '{'; sep=""
for k in test fetch_previous build verify publish authorize upgrade revoke; do printf '%s"%s": %s' "$sep" "$k" "${t[$k]}"; sep=", "; done
echo '}'
