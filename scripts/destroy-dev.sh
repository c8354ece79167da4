#!/usr/bin/env bash
# Removes what deploy-dev.sh deployed: `pulumi destroy` of a Docker stack, with the same local
# state backend (.pulumi-state/) and passphrase.
#   ./scripts/destroy-dev.sh                           # ecommerce-dev
#   ./scripts/destroy-dev.sh blog-dev --yes            # another Docker stack; other args go to `pulumi destroy`
#   ./scripts/destroy-dev.sh ecommerce-dev --unprotect # protected resources (data volumes) too: their data is lost
#   ./scripts/destroy-dev.sh ecommerce-dev --rm-stack  # then remove the stack from .pulumi-state/
# Protected resources (`protect`, e.g. data volumes with protectData or database.protect) make
# `pulumi destroy` stop; the script then says how to lift the protection, and never lifts it
# unless --unprotect is given. --rm-stack runs `pulumi stack rm --preserve-config` after a
# successful destroy: the stack's state goes, stacks/Pulumi.<stack>.yaml stays.
set -euo pipefail

stack=ecommerce-dev
if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
  stack="$1"
  shift
fi
unprotect=0
rm_stack=0
pulumi_args=()
for arg in "$@"; do
  case "$arg" in
    --unprotect) unprotect=1 ;;
    --rm-stack) rm_stack=1 ;;
    --remove | --remove=*)
      # pulumi destroy --remove also deletes stacks/Pulumi.<stack>.yaml, a file of this repository.
      echo "destroy-dev: --remove would delete stacks/Pulumi.${stack}.yaml too; use --rm-stack (keeps the stack file)." >&2
      exit 2
      ;;
    *) pulumi_args+=("$arg") ;;
  esac
done
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib-dev.sh
. scripts/lib-dev.sh

dev_require_docker_stack destroy-dev "$stack" "pulumi destroy"
dev_require_tools destroy-dev
dev_node_modules
dev_local_backend destroy-dev "$stack"

if ! out="$(pulumi stack select "$stack" 2>&1)"; then
  case "$out" in
    *"no stack named"*)
      echo "destroy-dev: nothing to destroy: no stack ${stack} in .pulumi-state/ (deploy-dev.sh creates it)."
      exit 0
      ;;
    *)
      echo "$out" >&2
      exit 1
      ;;
  esac
fi

if [ "$unprotect" = 1 ]; then
  echo "destroy-dev: --unprotect: clearing protect on every resource of ${stack}; their data goes with them."
  pulumi state unprotect --all --yes --stack "$stack"
fi

status=0
pulumi destroy --stack "$stack" "${pulumi_args[@]}" || status=$?
if [ "$status" -ne 0 ]; then
  # `pulumi stack export` prints the state as indented JSON, a protected resource with "protect": true.
  protected="$(pulumi stack export --stack "$stack" 2>/dev/null | grep -c '"protect": *true' || true)"
  if [ "${protected:-0}" -gt 0 ]; then
    # What a plain pulumi command needs to open the stack as this script does.
    by_hand="PULUMI_BACKEND_URL=file://${PWD}/.pulumi-state"
    if [ -z "${PULUMI_CONFIG_PASSPHRASE+set}" ] && [ -n "${PULUMI_CONFIG_PASSPHRASE_FILE-}" ]; then
      by_hand="${by_hand} PULUMI_CONFIG_PASSPHRASE_FILE=${PULUMI_CONFIG_PASSPHRASE_FILE}"
    fi
    cat >&2 <<MSG
destroy-dev: ${stack} has ${protected} protected resource(s) (protect: kept on destroy and replace,
  e.g. data volumes with protectData or database.protect), and pulumi destroy stops at them.
  To delete them as well (their data is lost):
    ./scripts/destroy-dev.sh ${stack} --unprotect
  which is, by hand:
    ${by_hand} pulumi state unprotect --all -s ${stack}
    ./scripts/destroy-dev.sh ${stack}
  To keep them and destroy everything else:
    ./scripts/destroy-dev.sh ${stack} --exclude-protected
MSG
  fi
  exit "$status"
fi

if [ "$rm_stack" = 1 ]; then
  pulumi stack rm --yes --preserve-config --stack "$stack"
  echo "destroy-dev: removed stack ${stack} from .pulumi-state/ (stacks/Pulumi.${stack}.yaml kept)."
fi
