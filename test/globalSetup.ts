import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const nuxi = fileURLToPath(new URL('../node_modules/@nuxt/cli/bin/nuxi.mjs', import.meta.url))

/** Set once the outputs were built in this run: two projects (chat, floods) share this setup. */
let built = false

/** The shared Redis's identity (`run_id` changes when it restarts); undefined when it is not running. */
function sharedRedisRun(): string | undefined {
  try {
    return /run_id:(\w+)/.exec(execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', '6379', 'INFO', 'server'], { stdio: 'pipe' }).toString())?.[1]
  }
  catch {
    return undefined
  }
}

/**
 * Build what the end-to-end tests run, once per test run (a few seconds each). At the end, the shared Redis must be
 * the one the run started with: files run side by side, and a test that restarts it empties it under the others.
 */
export default function setup() {
  if (built) return
  built = true
  const redisRun = sharedRedisRun()
  const teardown = () => {
    if (redisRun && sharedRedisRun() !== redisRun) {
      // Thrown in a teardown, an error is only printed: the run must fail.
      process.exitCode = 1
      throw new Error('A test restarted the shared Redis (127.0.0.1:6379), emptying it under the files running beside it: start a Redis of the test\'s own instead (ownRedis in test/utils/faults.ts)')
    }
  }
  const build = (dir: string, env: Record<string, string> = {}) => {
    execFileSync(process.execPath, [nuxi, 'build', dir], { cwd: root, stdio: 'pipe', env: { ...process.env, ...env } })
  }
  // CHAT_SERVER_ROOT: the suites run against another app, built by its own script (scripts/nuxt5.sh).
  if (process.env.CHAT_SERVER_ROOT) return teardown
  // CHAT_SKIP_BUILD=1 reuses the outputs of an earlier run (while iterating on tests only).
  if (process.env.CHAT_SKIP_BUILD && existsSync(`${root}/test/fixtures/basic/${process.env.CHAT_FIXTURE_OUT || '.output'}`)) return teardown
  build('test/fixtures/basic')
  build('test/fixtures/basic', { CHAT_FIXTURE_DB: 'postgresql' })
  build('playground')
  return teardown
}
