# Shared by deploy-dev.sh and destroy-dev.sh (sourced, not run): the checks and the local
# Pulumi backend of the Docker dev stacks. Every function takes the calling script's name
# first, so a message says which command stopped.
# shellcheck shell=bash

# Stops unless stacks/Pulumi.<stack>.yaml exists and runs on Docker; `pulumi_cmd` is what to
# run instead for a Kubernetes stack (e.g. `pulumi up`).
dev_require_docker_stack() {
  local me="$1" stack="$2" pulumi_cmd="$3"
  if [ ! -f "stacks/Pulumi.${stack}.yaml" ]; then
    local names=() f
    for f in stacks/Pulumi.*.yaml; do
      f="${f#stacks/Pulumi.}"
      names+=("${f%.yaml}")
    done
    echo "${me}: no stack file stacks/Pulumi.${stack}.yaml (stacks: ${names[*]})" >&2
    exit 2
  fi
  if ! grep -q '^  ha-backend:platform: docker' "stacks/Pulumi.${stack}.yaml"; then
    echo "${me}: ${stack} does not run on Docker; this script handles Docker stacks only (use ${pulumi_cmd} -s ${stack} with a kubeconfig)." >&2
    exit 2
  fi
}

# Stops with advice unless the pulumi and docker CLIs are installed and the Docker engine answers.
dev_require_tools() {
  local me="$1"
  if ! command -v pulumi >/dev/null 2>&1; then
    cat >&2 <<MSG
${me}: the Pulumi CLI is not installed.
  Install it from https://www.pulumi.com/docs/iac/download-install/
  (Linux/macOS: curl -fsSL https://get.pulumi.com | sh ; macOS: brew install pulumi/tap/pulumi),
  then run this script again. No Pulumi account is needed: state stays in .pulumi-state/.
MSG
    exit 1
  fi
  if ! command -v docker >/dev/null 2>&1; then
    echo "${me}: the docker CLI is not installed. Install Docker Engine or Docker Desktop: https://docs.docker.com/get-docker/" >&2
    exit 1
  fi
  if ! docker info >/dev/null 2>&1; then
    echo "${me}: the Docker engine is not reachable (docker info failed). Start Docker, or check DOCKER_HOST and your permissions (e.g. membership of the docker group)." >&2
    exit 1
  fi
}

# Points Pulumi at a local backend under the repo, for this process only: the user's global
# `pulumi login` is untouched. Local dev stacks encrypt their secrets with a passphrase: the
# user's PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE when set (even empty), else
# a random one generated on first use into .pulumi-state/passphrase (mode 0600) and read by
# Pulumi from there, never printed and never on a command line. A stack created with another
# passphrase (the empty one of earlier versions: its stack file has an encryptionsalt but there
# is no passphrase file yet) stops the script with how to go on.
dev_local_backend() {
  local me="$1" stack="$2"
  local file="${PWD}/.pulumi-state/passphrase"
  mkdir -p .pulumi-state
  export PULUMI_BACKEND_URL="file://${PWD}/.pulumi-state"
  # Pulumi reads PULUMI_CONFIG_PASSPHRASE first, even when empty: the user's choice wins.
  if [ -n "${PULUMI_CONFIG_PASSPHRASE+set}" ] || [ -n "${PULUMI_CONFIG_PASSPHRASE_FILE-}" ]; then
    return 0
  fi
  if [ ! -f "$file" ]; then
    if grep -q '^encryptionsalt:' "stacks/Pulumi.${stack}.yaml"; then
      cat >&2 <<MSG
${me}: ${stack} was created with another passphrase (stacks/Pulumi.${stack}.yaml has an
  encryptionsalt), most likely the empty one earlier versions of this script used, and
  .pulumi-state/passphrase does not exist yet. Either keep that passphrase for this stack:
    PULUMI_CONFIG_PASSPHRASE= ./scripts/${me}.sh ${stack}
  or start it over with a generated one (its containers and data go):
    PULUMI_CONFIG_PASSPHRASE= ./scripts/destroy-dev.sh ${stack} --rm-stack
    then delete the encryptionsalt line from stacks/Pulumi.${stack}.yaml and run ./scripts/deploy-dev.sh ${stack}
MSG
      exit 2
    fi
    dev_new_passphrase "$me" "$file"
  fi
  export PULUMI_CONFIG_PASSPHRASE_FILE="$file"
}

# Writes 32 random bytes (hex) to `file`, readable by the user only; a file another run wrote
# first (noclobber) is kept.
dev_new_passphrase() {
  local me="$1" file="$2" phrase
  phrase="$(od -An -vtx1 -N32 /dev/urandom | tr -d ' \n')" || phrase=""
  if [ "${#phrase}" -ne 64 ]; then
    echo "${me}: could not read 32 random bytes from /dev/urandom for ${file}." >&2
    exit 1
  fi
  (umask 077 && set -o noclobber && printf '%s\n' "$phrase" >"$file") 2>/dev/null || [ -s "$file" ] || {
    echo "${me}: could not write ${file}." >&2
    exit 1
  }
}

# A fresh clone has no node_modules; Pulumi's Node.js host needs @pulumi/pulumi from it.
dev_node_modules() {
  [ -d node_modules ] || npm ci --no-audit --no-fund
}
