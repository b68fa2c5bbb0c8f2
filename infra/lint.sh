#!/usr/bin/env bash
# Lint template.yaml with the project's pinned tools: cfn-lint, then SAM's own check
# (SAM transform + its cfn-lint pass). Offline, a few seconds. Runs both, exits non-zero
# if either fails. Usage: infra/lint.sh
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$repo/.venv/bin"
export SAM_CLI_TELEMETRY=0
"$repo/infra/local/bootstrap.sh"
cd "$repo"

# cfn-lint checks one region (us-east-1) by default; also check every region we deploy
# to, since resource and property support differs there (above all in the aws-cn
# partition). The regions come from samconfig.toml, not from a second list here.
mapfile -t regions < <("$bin/python" -c '
import tomllib
cfg = tomllib.load(open("samconfig.toml", "rb"))
print("\n".join(sorted({"us-east-1"} | {e["global"]["parameters"]["region"]
                        for e in cfg.values() if isinstance(e, dict) and "global" in e})))')

rc=0
echo "+ cfn-lint --regions ${regions[*]} -- template.yaml" >&2
"$bin/cfn-lint" --regions "${regions[@]}" -- template.yaml </dev/null || rc=1
# The optional halves, switched on: the notifier in a VPC (fixed egress IP) and a
# stack refusing mainland mobiles, as a prod stack with a channel.
vpc=(NotifierSubnetIds=subnet-0123456789abcdef0,subnet-0123456789abcdef1
     NotifierSecurityGroupIds=sg-0123456789abcdef0 AcceptMainlandMobiles=false
     Stage=prod WecomCorpId=ww0123456789 WecomAgentId=1000002)
echo "+ cfn-lint --regions ${regions[*]} --parameters ${vpc[*]} -- template.yaml" >&2
"$bin/cfn-lint" --regions "${regions[@]}" --parameters "${vpc[@]}" -- template.yaml </dev/null || rc=1
echo "+ sam validate --lint --region us-east-1 --template template.yaml" >&2
# stdin closed: sam must never sit waiting on a prompt (telemetry, guided questions).
"$bin/sam" validate --lint --region us-east-1 --template template.yaml </dev/null || rc=1
if [[ $rc == 0 ]]; then echo "lint: ok" >&2; else echo "lint: FAILED" >&2; fi
exit "$rc"
