#!/usr/bin/env bash
# make demo: a whole CDC pipeline in one command, on this machine only —
# a throwaway MariaDB (source), the StarRocks emulator (target; NOT
# StarRocks, see internal/sremu/README.md) and a sluice server. Creates a
# mysql_cdc → starrocks job (exactly-once), writes rows, and shows source
# and target counts matching and the job in sluice.metrics. Cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
mkdir -p bin
go build -o bin/sluice ./cmd/sluice
go build -o bin/starrocks-emulator ./cmd/starrocks-emulator

free_port() {
  local p
  for _ in $(seq 1 100); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then echo "$p"; return; fi
  done
  echo "no free port" >&2; exit 1
}
W=$(mktemp -d /tmp/sluice-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  scripts/mariadb.sh stop "$W/mariadb" || true
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
CLI=$(command -v mariadb || command -v mysql)

say "starting MariaDB (binlog ROW/FULL), the StarRocks emulator and sluice"
DB=$(scripts/mariadb.sh start "$W/mariadb" "$(free_port)")
FE=$(free_port); Q=$(free_port); SP=$(free_port); HP=$(free_port); RP=$(free_port)
bin/starrocks-emulator --fe "127.0.0.1:$FE" --query "127.0.0.1:$Q" --user root >"$W/emulator.log" 2>&1 &
pids+=($!)
bin/sluice server --data-dir "$W/sluice" --mysql-addr "127.0.0.1:$SP" --http-addr "127.0.0.1:$HP" --raft-addr "127.0.0.1:$RP" >"$W/sluice.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$HP/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
src() { "$CLI" -h 127.0.0.1 -P "$DB" -u admin -padminpw -N -B -e "$1"; }
sl() { "$CLI" -h 127.0.0.1 -P "$SP" -u root -e "$1"; }
sr() { "$CLI" -h 127.0.0.1 -P "$Q" -u root -N -B -e "$1"; }

say "source: shop.orders with 50000 rows"
src "CREATE DATABASE shop;
     CREATE TABLE shop.orders (id INT PRIMARY KEY, customer INT, amount DECIMAL(12,2), status VARCHAR(10), created DATETIME(6));
     INSERT INTO shop.orders SELECT seq, seq % 997, seq / 7, 'new', NOW(6) FROM shop.seq_1_to_50000;"

say "CREATE SYNC JOB (mysql_cdc → starrocks, exactly-once)"
JOB="CREATE SYNC JOB orders
  FROM mysql_cdc ('host'='127.0.0.1', 'port'='$DB', 'user'='repl', 'password'='replpw', 'tables'='shop\\\\.orders')
  TRANSFORM table_rename ('prefix'='ods_')
  TO starrocks ('fe'='127.0.0.1:$FE', 'query_port'='$Q', 'user'='root', 'database'='ods',
                'semantic'='exactly-once', 'batch.interval'='1s')
  WITH ('checkpoint.interval'='2s')"
echo "$JOB"
sl "$JOB"

say "live writes at the source: 5000 inserts, 10000 updates, 2000 deletes"
src "INSERT INTO shop.orders SELECT seq, seq % 997, 1, 'new', NOW(6) FROM shop.seq_50001_to_55000;
     UPDATE shop.orders SET status = 'paid', amount = amount + 1 WHERE id % 5 = 0;
     DELETE FROM shop.orders WHERE id % 25 = 1;"

say "waiting for the target to catch up"
want=$(src "SELECT COUNT(*) FROM shop.orders")
for _ in $(seq 1 120); do
  got=$(sr "SELECT COUNT(*) FROM ods.ods_orders" 2>/dev/null || echo 0)
  [ "$got" = "$want" ] && break
  sleep 0.5
done
echo "source shop.orders:                    $want rows"
echo "StarRocks emulator ods.ods_orders:     $got rows"
sl "SELECT job, table_name, source_received_count, sink_write_count, lag_ms FROM sluice.metrics;
    SELECT checkpoint_id, state, duration_ms FROM sluice.checkpoints ORDER BY checkpoint_id DESC LIMIT 3;
    SHOW SYNC JOBS;"
if [ "$got" != "$want" ]; then
  echo "the counts differ; logs in $W (kept)"; trap - EXIT; exit 1
fi
say "source and target match"
