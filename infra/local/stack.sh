#!/usr/bin/env bash
# Local AWS stand-in: moto_server (DynamoDB + SQS + CloudFormation) on 127.0.0.1 holding
# exactly the tables and queues of template.yaml, plus an env file with the variables the
# functions get in AWS, resolved against it.
#
# Usage: infra/local/stack.sh up|down|status|env
#   up      start (or reuse) the emulator, create the resources, print the env file
#   down    stop the emulator (no error if it isn't running); state is in memory, so gone
#   status  "running <pid> <endpoint>" (exit 0) or "not running" (exit 1)
#   env     print the env file (exit 1 if the stack isn't up)
# stdout carries only env lines, logs go to stderr: `eval "$(infra/local/stack.sh up)"` works.
# LOCAL_AWS_REGION overrides the region (default us-east-1).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"           # repo root from the script's location, not cwd
# gitignored; LEADS_LOCAL_STATE gives a second, independent stack (the demo uses one).
state="${LEADS_LOCAL_STATE:-$repo/.local}"
pidf="$state/moto.pid" logf="$state/moto.log" endpf="$state/moto.endpoint" envf="$state/env"
tplsumf="$state/template.sha256"            # template.yaml the running stack was made from
py="$repo/.venv/bin/python"
region="${LOCAL_AWS_REGION:-us-east-1}"

log() { echo "stack: $*" >&2; }

# True if the pid file names a live moto_server. Checking the command line too means a
# stale pid file whose pid got reused by something else is never mistaken for (or killed as) ours.
running() {
  [[ -s "$pidf" ]] || return 1
  local pid; pid="$(cat "$pidf")"
  [[ "$(ps -p "$pid" -o args= 2>/dev/null)" == *moto_server* ]]
}

# Serialise up/down: parallel test jobs may all call `up` at once and must share one emulator.
lock() { mkdir -p "$state"; exec 9>"$state/stack.lock"; flock 9; }

# Wait until moto answers GET /moto-api/ (about 0.5 s normally); fail early if it died.
wait_ready() {
  "$py" - "$1" "$2" <<'EOF'
import os, sys, time, urllib.request
url, pid = sys.argv[1] + "/moto-api/", int(sys.argv[2])
no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    try:
        no_proxy.open(url, timeout=1).read()
        sys.exit(0)
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("moto_server exited during start-up")
    time.sleep(0.1)
sys.exit("moto_server did not answer within 20 s")
EOF
}

# Create the template's tables/queues (idempotent) and write the env file from scratch.
provision() {
  local url="$1"
  # AWS_DEFAULT_REGION too: the Rust SDK reads AWS_REGION, but boto3/botocore only the other.
  local -a base=(AWS_ENDPOINT_URL="$url" AWS_REGION="$region" AWS_DEFAULT_REGION="$region"
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true
    MOTO_ENDPOINT="$url")
  # create_resources.py prints the template's variables as JSON; prepend the base ones
  # and shell-quote everything. Written to a temp file first so a failure leaves no half file.
  env "${base[@]}" "$py" "$here/create_resources.py" | "$py" -c '
import json, shlex, sys
env = dict(kv.split("=", 1) for kv in sys.argv[1:])
env.update(json.load(sys.stdin))
for k, v in env.items():
    print(f"export {k}={shlex.quote(v)}")' "${base[@]}" >"$envf.tmp" || return 1
  # The secrets the template resolves from Secrets Manager, from a local random file.
  "$py" "$here/local_secrets.py" "$state/secrets.json" >>"$envf.tmp" || return 1
  mv "$envf.tmp" "$envf"
  sha256sum "$repo/template.yaml" | cut -d' ' -f1 >"$tplsumf"
}

stop() {
  if running; then
    local pid; pid="$(cat "$pidf")"
    # setsid made it a process-group leader: signal the group (pid = pgid), so nothing it
    # spawned is left behind; plain pid as fallback.
    kill -- "-$pid" 2>/dev/null || kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 -- "-$pid"
    log "stopped moto_server (pid $pid)"
  else
    log "not running"
  fi
  # The env file would point at a dead port: remove it with the pid file.
  rm -f "$pidf" "$endpf" "$envf" "$tplsumf"
}

up() {
  lock
  if running; then
    log "reusing moto_server pid $(cat "$pidf") at $(cat "$endpf")"
    # (Re)write the env file if missing or made by an older script without the secrets.
    grep -q '^export INTAKE_SECRETS=' "$envf" 2>/dev/null || provision "$(cat "$endpf")"
    # Reusing never changes a running stack (tests may be using it); just say it's stale.
    [[ "$(sha256sum "$repo/template.yaml" | cut -d' ' -f1)" == "$(cat "$tplsumf" 2>/dev/null)" ]] ||
      log "WARNING: template.yaml changed since this stack was created; run: $0 down && $0 up"
    cat "$envf"
    return
  fi
  "$here/bootstrap.sh"
  local port url pid
  # Port 0 lets the kernel pick a free port; there is a tiny window before moto binds it,
  # and if something grabs it first, moto exits and wait_ready reports it with the log.
  port="$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  url="http://127.0.0.1:$port"
  # setsid: its own session, so it outlives this script and the caller's terminal/job.
  # 9>&-: don't hand it our lock fd, or the lock would be held for as long as moto lives.
  # moto_server.py: moto's own server with its DynamoDB requests serialised (see there).
  setsid "$py" "$here/moto_server.py" 127.0.0.1 "$port" </dev/null >"$logf" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$pidf"
  echo "$url" >"$endpf"
  log "started moto_server pid $pid on $url (log $logf)"
  if ! wait_ready "$url" "$pid"; then
    log "last lines of $logf:"
    tail -n 20 "$logf" >&2
    kill -- "-$pid" 2>/dev/null || true     # the one we just started, even if it's hung
    stop
    exit 1
  fi
  # Don't leave a half-provisioned emulator behind (also: `|| return 1` above, since
  # set -e is off inside a function called from an `||` list).
  provision "$url" || { log "creating resources failed; stopping"; stop; exit 1; }
  cat "$envf"
}

case "${1:-}" in
  up) up ;;
  down) lock; stop ;;
  status)
    if running; then echo "running $(cat "$pidf") $(cat "$endpf")"; else echo "not running"; exit 1; fi ;;
  env)
    if running && [[ -s "$envf" ]]; then cat "$envf"; else log "not up: run $0 up"; exit 1; fi ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
