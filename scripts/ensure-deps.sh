#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine: a MySQL
# command-line client (the end-to-end tests drive the real binary with it) and
# the MariaDB server (CDC tests start throwaway instances of it), curl,
# Chromium and Prometheus.
# Idempotent; run by `make test`.
set -euo pipefail

need=()
command -v mariadb >/dev/null 2>&1 || command -v mysql >/dev/null 2>&1 || need+=(mariadb-client)
command -v curl >/dev/null 2>&1 || need+=(curl)
# The status page is tested in a real headless browser, the Grafana
# dashboard's queries against a real Prometheus.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
[ -x /usr/sbin/mariadbd ] || command -v mariadbd >/dev/null 2>&1 || need+=(mariadb-server)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "missing: ${need[*]} — install them (Debian: apt-get install ${need[*]}) and rerun" >&2
  exit 1
fi
echo "installing ${need[*]} from Debian packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
