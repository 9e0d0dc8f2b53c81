#!/usr/bin/env bash
# A throwaway MariaDB for trying sluice: binlog on (ROW, FULL image, FULL
# metadata), loopback only, users admin/adminpw (everything) and
# repl/replpw (what mysql_cdc needs).
#   scripts/mariadb.sh start DIR [PORT]   # prints the port
#   scripts/mariadb.sh stop DIR
set -euo pipefail
cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR [PORT]" >&2; exit 2; }
bin=$(command -v mariadbd || echo /usr/sbin/mariadbd)
case "$cmd" in
start)
  [ -x "$bin" ] || { echo "mariadbd not found: apt-get install mariadb-server (or run scripts/ensure-deps.sh)" >&2; exit 1; }
  port=${3:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
  mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
  user=(); [ "$(id -u)" -eq 0 ] && user=(--user=root)
  if [ ! -d "$dir/data" ]; then
    mariadb-install-db --no-defaults --datadir="$dir/data" --auth-root-authentication-method=normal \
      --skip-test-db --skip-name-resolve "${user[@]}" >"$dir/install.log" 2>&1
    fresh=1
  fi
  "$bin" --no-defaults --datadir="$dir/data" --socket="$dir/sock" --port="$port" --bind-address=127.0.0.1 \
    --log-bin="$dir/binlog" --binlog-format=ROW --binlog-row-image=FULL --binlog-row-metadata=FULL \
    --server-id=1 --skip-name-resolve --pid-file="$dir/pid" --log-error="$dir/err.log" \
    --innodb-buffer-pool-size=128M --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci "${user[@]}" >/dev/null 2>&1 &
  for _ in $(seq 1 600); do
    mariadb -S "$dir/sock" -uroot -e 'SELECT 1' >/dev/null 2>&1 && break
    sleep 0.1
  done
  mariadb -S "$dir/sock" -uroot -e 'SELECT 1' >/dev/null || { echo "mariadbd did not start; see $dir/err.log" >&2; exit 1; }
  if [ -n "${fresh:-}" ]; then
    mariadb -S "$dir/sock" -uroot -e "CREATE USER admin@'%' IDENTIFIED BY 'adminpw'; GRANT ALL ON *.* TO admin@'%' WITH GRANT OPTION;
      CREATE USER repl@'%' IDENTIFIED BY 'replpw'; GRANT REPLICATION SLAVE, BINLOG MONITOR, SELECT ON *.* TO repl@'%';"
  fi
  echo "$port" >"$dir/port"
  echo "$port"
  ;;
stop)
  [ -f "$dir/pid" ] && kill "$(cat "$dir/pid")" 2>/dev/null || true
  for _ in $(seq 1 300); do [ -f "$dir/pid" ] || break; sleep 0.1; done
  ;;
*) echo "usage: $0 start|stop DIR [PORT]" >&2; exit 2 ;;
esac
