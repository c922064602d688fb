#!/usr/bin/env bash
# What the tests talk to for real: Redis, PostgreSQL (trust auth, database test) and Debian's
# Chromium. Starts what is stopped, installs what is missing (Debian packages, as root), and
# fails loudly otherwise. Run by `npm test` (pretest) and so by .ci/run.
set -euo pipefail
log() { echo "[test-env] $*"; }
die() { echo "[test-env] FAILED: $*" >&2; exit 1; }

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then apt-get update -qq || die "apt-get update"; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null || die "apt-get install $*"
}
wait_for() { # wait_for <what> <command...>
  local what=$1; shift
  for _ in $(seq 1 60); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  die "$what did not come up"
}

# --- Redis (127.0.0.1:6379): the scale-out tests' bus.
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  command -v redis-server >/dev/null || { log "installing redis-server"; apt_install redis-server redis-tools; }
  mkdir -p /var/lib/redis /var/log/redis
  log "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for Redis redis-cli -h 127.0.0.1 -p 6379 ping
fi
log "Redis: $(redis-cli -h 127.0.0.1 -p 6379 ping)"

# --- PostgreSQL (127.0.0.1:5432, trust auth, database test): the shared store.
pg_ok() { psql -h 127.0.0.1 -U postgres -d test -tAc 'select 1' >/dev/null 2>&1; }
if ! pg_ok; then
  command -v pg_ctlcluster >/dev/null || { log "installing PostgreSQL"; apt_install postgresql; }
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  [ -n "$version" ] || die "no PostgreSQL cluster found"
  hba=/etc/postgresql/$version/main/pg_hba.conf
  # Tests connect as postgres without a password, as on the developers' machines.
  if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
    sed -i '/^\(local\|host\)/d' "$hba"
    printf 'local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n' >> "$hba"
  fi
  log "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  wait_for PostgreSQL pg_isready -h 127.0.0.1 -p 5432
  psql -h 127.0.0.1 -U postgres -tAc "select 1 from pg_database where datname='test'" | grep -q 1 \
    || psql -h 127.0.0.1 -U postgres -c 'create database test' >/dev/null
  pg_ok || die "PostgreSQL is up but postgres@127.0.0.1/test does not answer"
fi
log "PostgreSQL: $(psql -h 127.0.0.1 -U postgres -d test -tAc 'show server_version')"

# --- Chromium for the browser tests (Debian's; no browser downloads here).
if [ ! -x /usr/bin/chromium ]; then
  log "installing chromium"
  apt_install chromium
fi
log "$(/usr/bin/chromium --version 2>/dev/null)"


# --- The Nuxt UI example's own dependencies (test/browser/nuxtUi.test.ts builds it).
if [ ! -d examples/nuxt-ui/node_modules/@nuxt/ui ]; then
  log "installing examples/nuxt-ui's dependencies"
  (cd examples/nuxt-ui && npm ci --no-audit --no-fund --prefer-offline >/dev/null) || die "npm ci in examples/nuxt-ui"
fi
