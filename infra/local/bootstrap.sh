#!/usr/bin/env bash
# Create/refresh the project-local venv <repo>/.venv from infra/local/requirements.txt.
# Idempotent and fast on re-run: pip runs only when the sha256 of requirements.txt
# differs from the stamp written after the last successful install.
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
