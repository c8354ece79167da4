#!/usr/bin/env bash
# The whole test suite from a fresh clone on Debian/Ubuntu, as root or as a user with sudo:
#   1. npm ci, when node_modules is missing or older than package-lock.json (always with --clean);
#   2. the daemons the render and live tests run (scripts/install-test-deps.sh, as root: apt-get);
#   3. npm test (unit, render and live tiers), as root: the render and live tests mount private
#      /etc/hosts files, create the unprivileged `hapg` user and start daemons as other users.
#   scripts/test.sh                     # everything
#   scripts/test.sh test/unit           # arguments go to jest
#   scripts/test.sh --clean             # always a clean npm ci first (CI)
#   scripts/test.sh --setup-only        # steps 1 and 2 only
set -euo pipefail
cd "$(dirname "$0")/.."

started=$(date +%s)
step() { echo "=== test.sh: $* ($(($(date +%s) - started))s)"; }

clean=0
setup_only=0
jest_args=()
for arg in "$@"; do
  case "$arg" in
    --clean) clean=1 ;;
    --setup-only) setup_only=1 ;;
    *) jest_args+=("$arg") ;;
  esac
done

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "test.sh: Node.js 20 or later (with npm) is needed: https://nodejs.org/en/download (Debian 12's own nodejs is 18, too old)." >&2
  exit 1
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
  echo "test.sh: Node.js $(node --version) is too old; this project needs 20 or later (22 recommended): https://nodejs.org/en/download" >&2
  exit 1
fi

# Root runs commands directly; anyone else through sudo (which may ask for a password). Checked
# before anything is installed.
as_root=()
if [ "$(id -u)" != 0 ]; then
  if ! command -v sudo >/dev/null 2>&1; then
    cat >&2 <<'MSG'
test.sh: the render and live tests need root (apt-get for the daemons, private mount namespaces,
  a test user, daemons started as other users), and this is not root and sudo is not installed.
  Run this script as root, or install sudo and allow your user to use it.
MSG
    exit 1
  fi
  as_root=(sudo)
fi

# npm ci writes node_modules/.package-lock.json: older than package-lock.json means the lock
# file changed (a pull) since the last install. A clean install is `npm ci` either way.
if [ "$clean" = 1 ] || [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  step "npm ci"
  npm ci --no-audit --no-fund
else
  step "node_modules up to date with package-lock.json (--clean reinstalls)"
fi

step "Debian daemons for the render and live tests"
"${as_root[@]}" bash scripts/install-test-deps.sh

[ "$setup_only" = 1 ] && exit 0

step "npm test${jest_args[*]:+ ${jest_args[*]}}"
# Debian's PATH for users leaves out the sbin directories (useradd, the daemons); keep the
# caller's PATH otherwise, so sudo finds the same node. Variables the tests read pass through
# sudo; TMPDIR does not: the test user must be able to enter the daemons' data directories.
path="$PATH"
for dir in /usr/local/sbin /usr/sbin /sbin; do
  case ":$path:" in *":$dir:"*) ;; *) path="$path:$dir" ;; esac
done
env_args=("PATH=$path")
while IFS= read -r name; do
  case "$name" in
    HA_BACKEND_* | UPDATE_GOLDEN | CI) env_args+=("$name=${!name}") ;;
  esac
done < <(compgen -e)
"${as_root[@]}" env "${env_args[@]}" npm test -- "${jest_args[@]}"
