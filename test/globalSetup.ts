import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const nuxi = fileURLToPath(new URL('../node_modules/@nuxt/cli/bin/nuxi.mjs', import.meta.url))

/** Set once the outputs were built in this run: two projects (chat, floods) share this setup. */
let built = false

/** Build what the end-to-end tests run, once per test run (a few seconds each). */
export default function setup() {
  if (built) return
  built = true
  const build = (dir: string, env: Record<string, string> = {}) => {
    execFileSync(process.execPath, [nuxi, 'build', dir], { cwd: root, stdio: 'pipe', env: { ...process.env, ...env } })
  }
  // CHAT_SERVER_ROOT: the suites run against another app, built by its own script (scripts/nuxt5.sh).
  if (process.env.CHAT_SERVER_ROOT) return
  // CHAT_SKIP_BUILD=1 reuses the outputs of an earlier run (while iterating on tests only).
  if (process.env.CHAT_SKIP_BUILD && existsSync(`${root}/test/fixtures/basic/${process.env.CHAT_FIXTURE_OUT || '.output'}`)) return
  build('test/fixtures/basic')
  build('test/fixtures/basic', { CHAT_FIXTURE_DB: 'postgresql' })
  build('playground')
}
