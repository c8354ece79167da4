#!/usr/bin/env bash
# Installs the real daemons the render and live tests run against (Debian 12 packages).
# Idempotent: skips apt when every binary is already present. Needs root (CI runs as root).
set -euo pipefail

# dnsmasq (the cluster DNS) and iptables (kube-proxy's rules): the Kubernetes routing model of
# test/live/k8s-routing.live.test.ts, inside a network namespace of its own (unshare/nsenter).
# Prometheus, promtool, amtool and the exporters: test/render/monitoring and
# test/live/monitoring (rules tested with promtool, real scrapes of the generated daemons).
need=(nginx haproxy patroni etcd etcdctl redis-server redis-sentinel mariadbd mariadb-backup memcached openssl wrk
  dnsmasq iptables iptables-restore nsenter prometheus promtool amtool prometheus-alertmanager
  prometheus-postgres-exporter prometheus-mysqld-exporter prometheus-redis-exporter
  prometheus-nginx-exporter prometheus-node-exporter prometheus-blackbox-exporter)
missing=()
for bin in "${need[@]}"; do
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || missing+=("$bin")
done
# The failover chart (scripts/plot-failover.py) plots with Debian's matplotlib.
/usr/bin/python3 -c "import matplotlib" >/dev/null 2>&1 || missing+=(python3-matplotlib)
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-test-deps: all daemons present"
  exit 0
fi
echo "install-test-deps: missing ${missing[*]}; installing Debian packages"

export DEBIAN_FRONTEND=noninteractive
# Package post-install scripts must not start the daemons as system services: tests start
# their own instances on loopback, and a system nginx/redis/mariadb would hold the ports.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  created_policy=1
fi
trap '[ "$created_policy" = 1 ] && rm -f "$policy"' EXIT

apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  nginx-light haproxy patroni etcd-server etcd-client redis-server redis-sentinel \
  mariadb-server mariadb-backup galera-4 memcached openssl wrk dnsmasq-base iptables util-linux \
  iproute2 procps shellcheck prometheus prometheus-alertmanager prometheus-postgres-exporter \
  prometheus-mysqld-exporter prometheus-redis-exporter prometheus-nginx-exporter \
  prometheus-node-exporter prometheus-blackbox-exporter python3-matplotlib >/dev/null
echo "install-test-deps: done"
