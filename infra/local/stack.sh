#!/usr/bin/env bash
# The local AWS stand-in, on 127.0.0.1 only, holding exactly the tables, queues and
# secrets of template.yaml, plus an env file with the variables the functions get in AWS:
#   - DynamoDB: AWS's DynamoDB Local (default) or moto, chosen by LOCAL_DYNAMODB=ddblocal|moto;
#   - SQS (and CloudFormation, used to create the queues) and Secrets Manager: moto_server;
#   - two loopback proxies in front of the DynamoDB engine (infra/local/ddb_proxy.py): the
#     one everybody uses (AWS_ENDPOINT_URL_DYNAMODB) fills in what the 2020 engine leaves
#     out of a failed condition; the contention one (LOCAL_DDB_CONTENTION_URL; hold window
#     LOCAL_DDB_CONFLICT_MS, default 10) also gives it DynamoDB's optimistic concurrency,
#     for the tests and benchmarks that ask for it.
#
# Usage: infra/local/stack.sh up|down|status|env
#   up      start (or reuse) the stack, create the resources, print the env file
#   down    stop everything it started (no error if nothing runs); state is in memory, so gone
#   status  "running <engine> <dynamodb endpoint> <moto endpoint>" (exit 0) or "not running" (exit 1)
#   env     print the env file (exit 1 if the stack isn't up)
# stdout carries only env lines, logs go to stderr: `eval "$(infra/local/stack.sh up)"` works
# (but exits 0 even if `up` failed: capture first, `env="$(stack.sh up)" && eval "$env"`).
# LOCAL_AWS_REGION overrides the region (default us-east-1); LEADS_LOCAL_STATE gives a
# second, independent stack (the demo and the second-engine test pass use one).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"           # repo root from the script's location, not cwd
state="${LEADS_LOCAL_STATE:-$repo/.local}"  # gitignored
envf="$state/env" enginef="$state/engine"
tplsumf="$state/template.sha256"            # template.yaml the running stack was made from
py="$repo/.venv/bin/python"
ddblocal="$repo/.tools/dynamodb-local"
region="${LOCAL_AWS_REGION:-us-east-1}"
engine="${LOCAL_DYNAMODB:-ddblocal}"
conflict_ms="${LOCAL_DDB_CONFLICT_MS:-10}"
services=(moto dynamodb ddbproxy contention) # pid files $state/<name>.pid, endpoints <name>.endpoint

log() { echo "stack: $*" >&2; }

case "$engine" in ddblocal|moto) ;; *) log "LOCAL_DYNAMODB must be ddblocal or moto, not '$engine'"; exit 2 ;; esac

# The command line each service runs with, so a stale pid file whose pid got reused by
# something else is never mistaken for (or killed as) ours.
signature() {
  case "$1" in
    moto) echo moto_server ;; dynamodb) echo LoopbackDynamoDBLocal ;; ddbproxy|contention) echo ddb_proxy ;;
  esac
}

alive() {
  local pidf="$state/$1.pid"
  [[ -s "$pidf" ]] || return 1
  [[ "$(ps -p "$(cat "$pidf")" -o args= 2>/dev/null)" == *"$(signature "$1")"* ]]
}

# Up means: moto and the proxies alive, and DynamoDB Local too when it is the engine.
running() {
  alive moto && alive ddbproxy && alive contention || return 1
  [[ "$(cat "$enginef" 2>/dev/null)" != ddblocal ]] || alive dynamodb
}

# Serialise up/down: parallel test jobs may all call `up` at once and must share one stack.
lock() { mkdir -p "$state"; exec 9>"$state/stack.lock"; flock 9; }

free_port() {
  "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts a service in its own session (setsid: it outlives this script and the caller's
# terminal; 9>&-: it must not inherit the lock), records pid and endpoint, waits until it
# answers an HTTP request (any status) or fails with its log.
start() {
  local name="$1" port="$2"; shift 2
  local url="http://127.0.0.1:$port" logf="$state/$name.log"
  setsid "$@" </dev/null >"$logf" 2>&1 9>&- &
  echo $! >"$state/$name.pid"
  echo "$url" >"$state/$name.endpoint"
  log "started $name pid $! on $url (log $logf)"
  "$py" - "$url" "$!" "$name" <<'EOF' || { log "last lines of $logf:"; tail -n 20 "$logf" >&2; return 1; }
import os, sys, time, urllib.error, urllib.request
url, pid, name = sys.argv[1] + "/", int(sys.argv[2]), sys.argv[3]
no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        no_proxy.open(url, timeout=1).read()
        sys.exit(0)
    except urllib.error.HTTPError:
        sys.exit(0)  # it answered
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit(f"{name} exited during start-up")
    time.sleep(0.1)
sys.exit(f"{name} did not answer within 30 s")
EOF
}

# Create the template's tables/queues/secrets (idempotent), put the demo values into the
# secrets operators fill in, and write the env file from scratch. The env file holds the
# secrets' ids (*_SECRET_ID, their ARNs in moto), never a secret's value.
provision() {
  local moto_url ddb_url
  moto_url="$(cat "$state/moto.endpoint")"
  ddb_url="$(cat "$state/ddbproxy.endpoint")"
  # One endpoint per service (the SDKs' per-service variables), AWS_ENDPOINT_URL for the
  # rest. AWS_DEFAULT_REGION too: the Rust SDK reads AWS_REGION, boto3 only the other.
  local -a base=(AWS_ENDPOINT_URL="$moto_url" AWS_ENDPOINT_URL_SQS="$moto_url"
    AWS_ENDPOINT_URL_DYNAMODB="$ddb_url" LOCAL_DYNAMODB="$engine"
    LOCAL_DDB_CONTENTION_URL="$(cat "$state/contention.endpoint")" LOCAL_DDB_CONFLICT_MS="$conflict_ms"
    AWS_REGION="$region" AWS_DEFAULT_REGION="$region"
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true
    MOTO_ENDPOINT="$moto_url")
  # create_resources.py prints the template's variables as JSON; prepend the base ones
  # and shell-quote everything. Written to a temp file first so a failure leaves no half file.
  env "${base[@]}" "$py" "$here/create_resources.py" | "$py" -c '
import json, shlex, sys
env = dict(kv.split("=", 1) for kv in sys.argv[1:])
env.update(json.load(sys.stdin))
for k, v in env.items():
    print(f"export {k}={shlex.quote(v)}")' "${base[@]}" >"$envf.tmp" || return 1
  # Demo values into the webhook and notifier secrets while they hold "{}"; it reads the
  # base env and the ids from the file just written, and prints nothing on stdout.
  ( . "$envf.tmp" && "$py" "$here/local_secrets.py" ) >&2 || return 1
  # Older versions kept the secrets in plaintext here; they live in moto now.
  rm -f "$state/secrets.json"
  mv "$envf.tmp" "$envf"
  sha256sum "$repo/template.yaml" | cut -d' ' -f1 >"$tplsumf"
}

stop() {
  local name pid any=false
  for name in "${services[@]}"; do
    if alive "$name"; then
      pid="$(cat "$state/$name.pid")"
      # The process-group leader (setsid): signal the group, so nothing it spawned is left.
      kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 -- "-$pid" 2>/dev/null
      log "stopped $name (pid $pid)"
      any=true
    fi
    rm -f "$state/$name.pid" "$state/$name.endpoint"
  done
  $any || log "not running"
  # The env file would point at dead ports: remove it with the pid files.
  rm -f "$envf" "$tplsumf" "$enginef"
}

up() {
  lock
  if running; then
    local running_engine; running_engine="$(cat "$enginef")"
    if [[ "$running_engine" != "$engine" ]]; then
      log "the running stack uses LOCAL_DYNAMODB=$running_engine, not $engine; run: $0 down"
      exit 1
    fi
    log "reusing the running stack ($engine; moto $(cat "$state/moto.endpoint"))"
    grep -q '^export WEBHOOK_SECRET_ID=' "$envf" 2>/dev/null || provision
    # Reusing never changes a running stack (tests may be using it); just say it's stale.
    [[ "$(sha256sum "$repo/template.yaml" | cut -d' ' -f1)" == "$(cat "$tplsumf" 2>/dev/null)" ]] ||
      log "WARNING: template.yaml changed since this stack was created; run: $0 down && $0 up"
    cat "$envf"
    return
  fi
  stop 2>/dev/null                           # whatever is left of a half-dead stack
  LOCAL_DYNAMODB="$engine" "$here/bootstrap.sh"
  mkdir -p "$state"
  echo "$engine" >"$enginef"
  local failed=false
  # moto_server.py: moto's own server with its DynamoDB requests serialised (see there).
  local port; port="$(free_port)"
  start moto "$port" "$py" "$here/moto_server.py" 127.0.0.1 "$port" || failed=true
  if ! $failed && [[ $engine == ddblocal ]]; then
    port="$(free_port)"
    # -sharedDb: one database whatever the caller's credentials and region.
    start dynamodb "$port" java -Djava.library.path="$ddblocal/DynamoDBLocal_lib" \
      -cp "$ddblocal/DynamoDBLocal.jar:$ddblocal/DynamoDBLocal_lib/*:$ddblocal" \
      LoopbackDynamoDBLocal -inMemory -sharedDb -port "$port" || failed=true
  fi
  local upstream=""
  $failed || upstream="$(cat "$state/$([[ $engine == ddblocal ]] && echo dynamodb || echo moto).endpoint")"
  if ! $failed; then
    port="$(free_port)"
    start ddbproxy "$port" "$py" "$here/ddb_proxy.py" "$port" "$upstream" 0 || failed=true
  fi
  if ! $failed; then
    port="$(free_port)"
    start contention "$port" "$py" "$here/ddb_proxy.py" "$port" "$upstream" "$conflict_ms" || failed=true
  fi
  # Don't leave a half-made stack behind.
  if $failed || ! provision; then log "starting the local stack failed; stopping"; stop; exit 1; fi
  cat "$envf"
}

case "${1:-}" in
  up) up ;;
  down) lock; stop ;;
  status)
    if running; then
      echo "running $(cat "$enginef") $(cat "$state/ddbproxy.endpoint") $(cat "$state/moto.endpoint")"
    else echo "not running"; exit 1; fi ;;
  env)
    if running && [[ -s "$envf" ]]; then cat "$envf"; else log "not up: run $0 up"; exit 1; fi ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
