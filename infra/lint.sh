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
# The optional halves, switched on: the notifier in a VPC (fixed egress IP), a
# stack refusing mainland mobiles, as a prod stack with a channel, and a
# customer-managed KMS key for the tables, queues and secrets.
vpc=(NotifierSubnetIds=subnet-0123456789abcdef0,subnet-0123456789abcdef1
     NotifierSecurityGroupIds=sg-0123456789abcdef0 AcceptMainlandMobiles=false
     Stage=prod WecomCorpId=ww0123456789 WecomAgentId=1000002
     KmsKeyArn=arn:aws:kms:us-east-1:123456789012:key/0123abcd-4567-89ab-cdef-0123456789ab)
echo "+ cfn-lint --regions ${regions[*]} --parameters ${vpc[*]} -- template.yaml" >&2
"$bin/cfn-lint" --regions "${regions[@]}" --parameters "${vpc[@]}" -- template.yaml </dev/null || rc=1
# Each samconfig environment: its parameter_overrides name only template parameters,
# set what every region must (the data-residency switch above all), and lint clean
# with those values in its own region.
echo "+ samconfig.toml: each environment's parameters" >&2
"$bin/python" - <<'PY' || rc=1
import subprocess, sys, tomllib, yaml
class L(yaml.SafeLoader): pass
L.add_multi_constructor("!", lambda loader, suffix, node: None)
params = set(yaml.load(open("template.yaml"), Loader=L)["Parameters"])
cfg = tomllib.load(open("samconfig.toml", "rb"))
bad = []
for env, section in cfg.items():
    if not isinstance(section, dict) or "deploy" not in section:
        continue
    region = section.get("global", {}).get("parameters", {}).get("region") or cfg["default"]["global"]["parameters"]["region"]
    overrides = section["deploy"]["parameters"]["parameter_overrides"]
    overrides = overrides if isinstance(overrides, list) else overrides.split()
    values = dict(o.split("=", 1) for o in overrides)
    for k in sorted(set(values) - params):
        bad.append(f"{env}: {k} is not a template parameter")
    for k in ("Stage", "LeadLinkBase", "AcceptMainlandMobiles"):
        if k not in values:
            bad.append(f"{env}: sets no {k}")
    china = region.startswith("cn-")
    if values.get("Stage") == "prod" and values.get("AcceptMainlandMobiles") != ("true" if china else "false"):
        bad.append(f"{env}: a prod stack in {region} must set AcceptMainlandMobiles={'true' if china else 'false'}")
    r = subprocess.run([".venv/bin/cfn-lint", "--regions", region, "--parameters", *overrides, "--", "template.yaml"])
    if r.returncode:
        bad.append(f"{env}: cfn-lint fails with its parameters in {region}")
print("\n".join(bad) or f"samconfig: {len(cfg) - 1} environments ok", file=sys.stderr)
sys.exit(1 if bad else 0)
PY
echo "+ sam validate --lint --region us-east-1 --template template.yaml" >&2
# stdin closed: sam must never sit waiting on a prompt (telemetry, guided questions).
"$bin/sam" validate --lint --region us-east-1 --template template.yaml </dev/null || rc=1
if [[ $rc == 0 ]]; then echo "lint: ok" >&2; else echo "lint: FAILED" >&2; fi
exit "$rc"
