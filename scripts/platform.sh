#!/usr/bin/env bash
# `bash scripts/platform.sh DIR [suites…] [vitest options…]`: the module on another Nuxt, as an app
# installs it. DIR (test/nuxt5: the Nuxt 5 nightly; test/nuxt4-latest: the newest Nuxt 4) holds a
# package.json with its lock, and three apps that reuse this repo's code: DIR itself (the test
# fixture, test/fixtures/basic, built for SQLite and PostgreSQL), DIR/playground (the playground)
# and DIR/base-url (test/fixtures/base-url). Installs DIR's pinned dependencies (when its lock
# changed), packs this repository's module into DIR/node_modules, builds the four outputs, then runs
# the end-to-end and browser suites against them (CHAT_SERVER_ROOT=DIR). Fails loudly; never skips.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
app=${1:?usage: scripts/platform.sh DIR [suites…] [vitest options…]}
shift
name=$(basename "$app")
node="$root/node_modules/.bin/node" # Node 24, the repo's pin
log() { echo "[$name] $(date -u +%H:%M:%S) $*"; }
die() { echo "[$name] FAILED: $*" >&2; exit 1; }

# Every runtime dependency of the module must be in the app too (it resolves them from there).
"$node" -e '
  const mod = require("./package.json").dependencies, app = require(`./${process.argv[1]}/package.json`).dependencies
  const missing = Object.keys(mod).filter(name => !app[name])
  if (missing.length) { console.error(`${process.argv[1]}/package.json lacks ${missing.join(", ")}`); process.exit(1) }
' "$app" || die "dependencies"

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

build() { # build <label> <dir> [VAR=value…]: one app of the platform, its log in DIR/build-<label>.log
  local label=$1 dir=$2; shift 2
  local logfile="$root/$app/build-$label.log"
  log "building $dir ($label)"
  (cd "$dir" && env "$@" "$node" "$root/$app/node_modules/nuxt/bin/nuxt.mjs" build >"$logfile" 2>&1) \
    || { tail -n 40 "$logfile" >&2; die "nuxt build ($label), see $logfile"; }
  # On Nuxt 5 the module's server code is Nitro 3 code: the build must not wrap it in Nuxt's Nitro 2 compatibility layer.
  if grep -q NUXT_B9003 "$logfile"; then grep -A2 NUXT_B9003 "$logfile" >&2; die "nuxt build ($label) applied the Nitro 2 compatibility layer (NUXT_B9003)"; fi
}
build sqlite "$app" CHAT_FIXTURE_DB=sqlite
build postgresql "$app" CHAT_FIXTURE_DB=postgresql
build playground "$app/playground"
build base-url "$app/base-url"
versions=$("$node" -p "['nuxt', 'nitropack', 'nitro', 'h3', 'crossws'].flatMap(p => { try { return [p + ' ' + require('./$app/node_modules/' + p + '/package.json').version] } catch { return [] } }).join(', ')")
log "$versions"

# Test files given as arguments replace the default list (`npm run test:nuxt5 -- test/e2e/limits.test.ts`); other arguments go to vitest.
# The default: every end-to-end suite that runs the built outputs (not those that build or install apps of their own,
# nor the two 30 s office runs of limitsOffice: the hub's limits, the same code on every platform), and the playground's browser tests.
suites=() options=()
for arg in "$@"; do if [[ $arg == *.test.ts ]]; then suites+=("$arg"); else options+=("$arg"); fi; done
if [ ${#suites[@]} -eq 0 ]; then
  for file in test/e2e/*.test.ts; do
    case $(basename "$file") in autoImport.* | package.* | platform.* | readme.* | runtimeDatabase.* | devtools.build.* | devtools.dev.* | limitsOffice.*) ;; *) suites+=("$file") ;; esac
  done
  suites+=(test/browser/chat.test.ts test/browser/cors.test.ts)
fi
log "suites against the $name builds: ${suites[*]}"
CHAT_SERVER_ROOT="$root/$app" npx vitest run "${suites[@]}" "${options[@]}"
