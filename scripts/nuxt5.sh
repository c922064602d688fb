#!/usr/bin/env bash
# `npm run test:nuxt5`: the module on the Nuxt 5 nightly (Nitro 3, h3 2, crossws 0.4). Installs
# test/nuxt5's pinned dependencies (when its lockfile changed), packs this repository's module into
# its node_modules as an app would install it, builds the fixture (SQLite and PostgreSQL), then runs
# the end-to-end suites against those builds (CHAT_SERVER_ROOT). Fails loudly; never skips.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
app=test/nuxt5
node="$root/node_modules/.bin/node" # Node 24, the repo's pin
log() { echo "[nuxt5] $(date -u +%H:%M:%S) $*"; }
die() { echo "[nuxt5] FAILED: $*" >&2; exit 1; }

# Every runtime dependency of the module must be in the fixture too (it resolves them from there).
"$node" -e '
  const mod = require("./package.json").dependencies, app = require("./test/nuxt5/package.json").dependencies
  const missing = Object.keys(mod).filter(name => !app[name])
  if (missing.length) { console.error(`[nuxt5] test/nuxt5/package.json lacks ${missing.join(", ")}`); process.exit(1) }
' || die "dependencies"

if ! cmp -s "$app/package-lock.json" "$app/node_modules/.package-lock.json.ci" 2>/dev/null; then
  log "installing $app (npm ci)"
  (cd "$app" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci in $app"
  cp "$app/package-lock.json" "$app/node_modules/.package-lock.json.ci"
fi

log "building and packing the module"
PATH="$root/node_modules/.bin:$PATH" nuxt-module-build build >/dev/null || die "nuxt-module-build build"
pack=$(mktemp -d)
npm pack --silent --ignore-scripts --pack-destination "$pack" >/dev/null || die "npm pack"
rm -rf "$app/node_modules/nuxt-chat" && mkdir -p "$app/node_modules/nuxt-chat"
tar xzf "$pack"/nuxt-chat-*.tgz -C "$app/node_modules/nuxt-chat" --strip-components=1
rm -rf "$pack"

for db in sqlite postgresql; do
  log "building $app ($db)"
  (cd "$app" && CHAT_FIXTURE_DB=$db "$node" node_modules/nuxt/bin/nuxt.mjs build >"$root/$app/build-$db.log" 2>&1) \
    || { tail -n 40 "$root/$app/build-$db.log" >&2; die "nuxt build ($db), see $app/build-$db.log"; }
  # The module's server code is Nitro 3 code on Nuxt 5: the build must not wrap it in Nuxt's Nitro 2 compatibility layer.
  if grep -q NUXT_B9003 "$root/$app/build-$db.log"; then
    grep -A2 NUXT_B9003 "$root/$app/build-$db.log" >&2; die "nuxt build ($db) applied the Nitro 2 compatibility layer (NUXT_B9003)"
  fi
done
log "$("$node" -p "'nuxt ' + require('./$app/node_modules/nuxt/package.json').version + ', nitro ' + require('./$app/node_modules/nitro/package.json').version + ', h3 ' + require('./$app/node_modules/h3/package.json').version + ', crossws ' + require('./$app/node_modules/crossws/package.json').version")"

# Test files given as arguments replace the default list (`npm run test:nuxt5 -- test/e2e/limits.test.ts`); other arguments go to vitest.
suites=() options=()
for arg in "$@"; do if [[ $arg == *.test.ts ]]; then suites+=("$arg"); else options+=("$arg"); fi; done
[ ${#suites[@]} -gt 0 ] || suites=(test/e2e/seed.test.ts test/e2e/transports.test.ts test/e2e/durability.test.ts test/e2e/limits.test.ts test/e2e/http.test.ts test/e2e/badInput.test.ts)
log "end-to-end suites against the Nuxt 5 builds: ${suites[*]}"
CHAT_SERVER_ROOT="$root/$app" npx vitest run --project chat "${suites[@]}" "${options[@]}"
