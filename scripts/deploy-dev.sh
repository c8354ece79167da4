#!/usr/bin/env bash
# Deploys a stack on the local Docker engine with Pulumi's local state backend: no cloud
# account, state kept in .pulumi-state/ inside this repository.
#   ./scripts/deploy-dev.sh                 # ecommerce-dev
#   ./scripts/deploy-dev.sh blog-dev --yes  # another Docker stack; extra args go to `pulumi up`
set -euo pipefail

stack="${1:-ecommerce-dev}"
[ "$#" -gt 0 ] && shift
cd "$(dirname "$0")/.."

if [ ! -f "stacks/Pulumi.${stack}.yaml" ]; then
  echo "deploy-dev: no stack file stacks/Pulumi.${stack}.yaml (stacks: $(ls stacks | sed 's/Pulumi\.\(.*\)\.yaml/\1/' | tr '\n' ' '))" >&2
  exit 2
fi
if ! grep -q '^  ha-backend:platform: docker' "stacks/Pulumi.${stack}.yaml"; then
  echo "deploy-dev: ${stack} does not run on Docker; this script deploys Docker stacks only (use pulumi up -s ${stack} with a kubeconfig)." >&2
  exit 2
fi
if ! command -v pulumi >/dev/null 2>&1; then
  cat >&2 <<'MSG'
deploy-dev: the Pulumi CLI is not installed.
  Install it from https://www.pulumi.com/docs/iac/download-install/
  (Linux/macOS: curl -fsSL https://get.pulumi.com | sh ; macOS: brew install pulumi/tap/pulumi),
  then run this script again. No Pulumi account is needed: state stays in .pulumi-state/.
MSG
  exit 1
fi
if ! command -v docker >/dev/null 2>&1; then
  echo "deploy-dev: the docker CLI is not installed. Install Docker Engine or Docker Desktop: https://docs.docker.com/get-docker/" >&2
  exit 1
fi
if ! docker info >/dev/null 2>&1; then
  echo "deploy-dev: the Docker engine is not reachable (docker info failed). Start Docker, or check DOCKER_HOST and your permissions." >&2
  exit 1
fi

[ -d node_modules ] || npm ci --no-audit --no-fund

# A local backend under the repo for this process only: your global `pulumi login` is untouched.
mkdir -p .pulumi-state
export PULUMI_BACKEND_URL="file://${PWD}/.pulumi-state"
# Local dev stacks encrypt their secrets with a passphrase; empty unless you set your own.
export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE-}"

pulumi stack select "$stack" --create
pulumi up --stack "$stack" "$@"
# The program exports httpsUrl when the balancer terminates TLS (self-signed in dev: -k), url always.
if url="$(pulumi stack output --stack "$stack" httpsUrl 2>/dev/null)" && [ -n "$url" ]; then
  echo "deploy-dev: try  curl -k ${url%/}/"
elif url="$(pulumi stack output --stack "$stack" url 2>/dev/null)" && [ -n "$url" ]; then
  echo "deploy-dev: try  curl ${url%/}/"
fi
