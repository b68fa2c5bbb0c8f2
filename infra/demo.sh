#!/usr/bin/env bash
# The system's main job, locally (README quick start): the emulator with the
# template's tables and queues, the sample directory seeded, all six real
# functions served by `cargo lambda watch` on 127.0.0.1, a realistic day of
# signed webhooks posted to them, the SQS triggers played for the router, the
# notifier (delivering to a local WeCom/SMS/CRM stand-in) and the ranking jobs,
# consultants working through the staff API, an SLA sweep, the nightly ranking,
# and a report checked against what was sent.
# Leaves nothing running. Extra arguments go to lead-demo (e.g. --customers 1000,
# --dealers 600, or --directory data/sample-directory.json without --dealers).
# `--fault ignore-city` (for the demo test) serves functions built with a
# deliberate routing bug (leads-domain feature `fault-ignore-city`): the report
# must then fail.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
step() { printf '\n== %s\n' "$*" >&2; }

args=()
features=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --fault)
      [[ "${2:-}" == ignore-city ]] || { echo "demo.sh: --fault takes ignore-city" >&2; exit 2; }
      features=(--features leads-domain/fault-ignore-city)
      shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done

step "tools (pinned, project-local .venv) and a debug build of lead-demo and the functions ${features[*]}"
infra/local/bootstrap.sh
functions=(webhook-intake lead-router api notifier sla-sweeper brand-ranking)
# One build command for the demo and all six functions: cargo unifies features
# per command, so the dependencies are compiled once, not once per feature set.
pkgs=(-p lead-demo)
for function in "${functions[@]}"; do pkgs+=(-p "$function"); done
cargo build --locked --bins "${pkgs[@]}" "${features[@]}"
target="${CARGO_TARGET_DIR:-$repo/target}"

step "local stack (DynamoDB Local + moto on 127.0.0.1, tables and queues from template.yaml)"
# A fresh stack of its own (state in .local/demo, or LEADS_DEMO_STATE), so a test
# run's data never slows the demo and the demo never disturbs a test suite.
# LOCAL_DYNAMODB=moto runs it on moto's DynamoDB instead of AWS's DynamoDB Local.
export LEADS_LOCAL_STATE="${LEADS_DEMO_STATE:-$repo/.local/demo}"
infra/local/stack.sh down >/dev/null 2>&1 || true
stack_env="$(infra/local/stack.sh up)" || { echo "the local stack did not come up" >&2; exit 1; }
eval "$stack_env"

free_port() { .venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port="$(free_port)"
# The notifier talks to lead-demo's stand-in for WeCom, the SMS gateway and the
# brand CRM on this port (local values; in AWS they come from the template). The
# channels' keys are in the stack's notifier secret (NOTIFIER_SECRET_ID), where
# infra/local/local_secrets.py put the stand-in's demo values.
receiver_port="$(free_port)"
export NOTIFY_ALLOW_LOOPBACK_HTTP=1 WECOM_BASE_URL="http://127.0.0.1:$receiver_port" WECOM_CORP_ID=ww-demo-corp \
  WECOM_AGENT_ID=1000002 \
  SMS_GATEWAY_URL="http://127.0.0.1:$receiver_port/sms" \
  CRM_WEBHOOK_URL="http://127.0.0.1:$receiver_port/crm"
# The demo plays a day in about a minute; WeCom's 30 messages per member per
# minute would hold back the busiest consultant's jobs for SQS to retry later.
export WECOM_PER_MEMBER_PER_MINUTE=1000
# The demo plays a day in about a minute: a 5-minute summary window would send the
# managers' "nobody available" summaries after it ended. One message per lead here;
# the summary has its own emulator test (tests/tests/manager_storm.rs).
export NOTIFY_POOL_WINDOW_SECONDS=0
watch_pid=""
cleanup() {
  if [[ -n "$watch_pid" ]]; then kill -- "-$watch_pid" 2>/dev/null || true; wait "$watch_pid" 2>/dev/null || true; fi
  infra/local/stack.sh down
}
trap cleanup EXIT


# Instances of the intake, the router and the notifier: Lambda runs several at
# once when platforms push concurrently and SQS's event-source mapping scales
# out, and so does the replay.
instances="${DEMO_INSTANCES:-3}"
step "functions under cargo lambda watch on 127.0.0.1:$port (log: $LEADS_LOCAL_STATE/functions.log)"
# cargo-lambda's Lambda runtime and invoke APIs only; the binaries just built
# poll it as Lambda's runtime would (AWS_LAMBDA_RUNTIME_API), $instances at once
# for the intake, the router and the notifier. One process group, so cleanup stops them all.
: >"$LEADS_LOCAL_STATE/functions.log"
setsid bash -c '
  log="$1" port="$2" target="$3" instances="$4"; shift 4
  .venv/bin/cargo-lambda lambda watch --only-lambda-apis -A 127.0.0.1 -P "$port" >>"$log" 2>&1 </dev/null &
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  for function in "$@"; do
    n=1; case "$function" in webhook-intake|lead-router|notifier) n=$instances ;; esac
    for _ in $(seq "$n"); do
      AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$port/.rt/$function" AWS_LAMBDA_FUNCTION_NAME="$function" \
        AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256 \
        "$target/debug/$function" >>"$log" 2>&1 </dev/null &
    done
  done
  wait' demo "$LEADS_LOCAL_STATE/functions.log" "$port" "$target" "$instances" "${functions[@]}" &
watch_pid=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.2
done

step "the day: webhooks, router, notifier, consultants, SLA sweep, nightly ranking"
[[ ${#args[@]} -gt 0 ]] || args=(--customers 240)
"$target"/debug/lead-demo --endpoint "http://127.0.0.1:$port" --consumers "$instances" \
  --receiver-port "$receiver_port" --functions-log "$LEADS_LOCAL_STATE/functions.log" "${args[@]}"
