#!/usr/bin/env bash
# Deploys a stack on the local Docker engine with Pulumi's local state backend: no cloud
# account, state kept in .pulumi-state/ inside this repository.
#   ./scripts/deploy-dev.sh                 # ecommerce-dev
#   ./scripts/deploy-dev.sh blog-dev --yes  # another Docker stack; extra args go to `pulumi up`
# Undo with ./scripts/destroy-dev.sh [stack].
set -euo pipefail

stack="${1:-ecommerce-dev}"
[ "$#" -gt 0 ] && shift
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib-dev.sh
. scripts/lib-dev.sh

dev_require_docker_stack deploy-dev "$stack" "pulumi up"
dev_require_tools deploy-dev

dev_node_modules

dev_local_backend deploy-dev "$stack"
pulumi stack select "$stack" --create
pulumi up --stack "$stack" "$@"
# The program exports httpsUrl when the balancer terminates TLS (self-signed in dev: -k), url always.
if url="$(pulumi stack output --stack "$stack" httpsUrl 2>/dev/null)" && [ -n "$url" ]; then
  echo "deploy-dev: try  curl -k ${url%/}/"
elif url="$(pulumi stack output --stack "$stack" url 2>/dev/null)" && [ -n "$url" ]; then
  echo "deploy-dev: try  curl ${url%/}/"
fi
