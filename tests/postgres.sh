#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster for sealroot's broker tests and prints
# its DSN on stdout (the only thing printed there):
#
#   export SEALROOT_TEST_POSTGRES=$(bash tests/postgres.sh)
#   go test ./host/broker/...
#   bash tests/postgres.sh stop            # stops the cluster of $SEALROOT_TEST_POSTGRES
#   bash tests/postgres.sh stop DIR        # stops the cluster in DIR
#   bash tests/postgres.sh stop all        # stops every cluster this script started
#
# The cluster lives in a fresh /tmp/sealroot-pg.XXXXXX directory, runs as the
# postgres user, listens on 127.0.0.1 only (a free port), and has one role
# "sealroot" with a random password and one database "sealroot". Debian's
# postgresql package is installed with apt-get when no server binaries exist.
set -euo pipefail

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

log() { echo "postgres.sh: $*" >&2; }

# as_pg runs a command as the postgres user.
as_pg() {
  if [ "$(id -un)" = postgres ]; then "$@"
  elif [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"
  else sudo -u postgres -- "$@"
  fi
}

find_bindir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
  [ -n "$d" ] && [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && echo "$d"
}

stop_cluster() {
  local dir=$1 bindir
  [ -f "$dir/.sealroot-test-cluster" ] || { log "$dir is not a cluster started by this script"; return 1; }
  bindir=$(cat "$dir/.sealroot-test-cluster")
  as_pg "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
  log "stopped and removed $dir"
}

if [ "${1:-start}" = stop ]; then
  target=${2:-}
  if [ -z "$target" ]; then
    # The cluster whose DSN the caller exported, found by its port.
    port=$(printf '%s' "${SEALROOT_TEST_POSTGRES:-}" | sed -n 's#.*@127\.0\.0\.1:\([0-9]*\)/.*#\1#p')
    [ -n "$port" ] || { log "stop: SEALROOT_TEST_POSTGRES names no cluster of this script; give DIR or 'all'"; exit 1; }
    for d in /tmp/sealroot-pg.*; do
      [ "$(cat "$d/port" 2>/dev/null)" = "$port" ] && target=$d
    done
    [ -n "$target" ] || { log "stop: no cluster on port $port"; exit 0; }
  fi
  if [ "$target" = all ]; then
    for d in /tmp/sealroot-pg.*; do
      [ -f "$d/.sealroot-test-cluster" ] && stop_cluster "$d"
    done
  else
    stop_cluster "$target"
  fi
  exit 0
fi
[ "${1:-start}" = start ] || { log "usage: postgres.sh [start] | stop [DIR|all]"; exit 2; }

bindir=$(find_bindir || true)
if [ -z "$bindir" ]; then
  log "installing Debian's postgresql package"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql >&2
  bindir=$(find_bindir) || { log "no initdb/pg_ctl under /usr/lib/postgresql/*/bin after install"; exit 1; }
fi
getent passwd postgres >/dev/null || { log "the postgres user does not exist (is the postgresql package installed?)"; exit 1; }

# A free loopback port: nothing answers a connect on it. Chosen below the
# kernel's ephemeral range where there is room, since an outgoing
# connection may hold any port in that range without listening on it (and
# the server could not bind it); start_server tries again on another port
# if the bind fails all the same.
free_port() {
  local lo=20000 hi=60000 eph p
  eph=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true)
  if [ -n "$eph" ] && [ "$eph" -gt $((lo + 1000)) ]; then hi=$eph; fi
  for _ in $(seq 1 50); do
    p=$((lo + RANDOM % (hi - lo)))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
  done
  return 1
}
port=$(free_port) || { log "no free loopback port found"; exit 1; }

dir=$(mktemp -d /tmp/sealroot-pg.XXXXXX)
chmod 0755 "$dir"
password=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
printf '%s\n' "$password" >"$dir/pwfile"
mkdir -p "$dir/data" "$dir/sock"
chown postgres: "$dir/data" "$dir/sock" "$dir/pwfile"
chmod 0700 "$dir/data" "$dir/sock"
chmod 0600 "$dir/pwfile"
echo "$bindir" >"$dir/.sealroot-test-cluster"
echo "$port" >"$dir/port"

as_pg "$bindir/initdb" -D "$dir/data" -U sealroot --pwfile="$dir/pwfile" \
  --auth-host=scram-sha-256 --auth-local=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
  || { cat "$dir/initdb.log" >&2; exit 1; }
rm -f "$dir/pwfile"
start_server() {
  as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/data/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir/sock -c max_connections=200 -c fsync=on" start >&2
}
for attempt in 1 2 3 4 5; do
  if start_server; then break; fi
  if [ "$attempt" -lt 5 ] && grep -q 'could not bind' "$dir/data/server.log" 2>/dev/null; then
    log "port $port was taken after all; trying another"
    port=$(free_port) || { log "no free loopback port found"; exit 1; }
    echo "$port" >"$dir/port"
    continue
  fi
  cat "$dir/data/server.log" >&2
  exit 1
done
as_pg "$bindir/createdb" -h "$dir/sock" -p "$port" -U sealroot sealroot

log "cluster in $dir on 127.0.0.1:$port (stop: bash tests/postgres.sh stop $dir)"
echo "postgres://sealroot:$password@127.0.0.1:$port/sealroot?sslmode=disable"
