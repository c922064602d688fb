import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../..', import.meta.url))
const nuxi = fileURLToPath(new URL('../../node_modules/@nuxt/cli/bin/nuxi.mjs', import.meta.url))

/** A `nuxi dev` server of one app, in its own process. */
export interface DevServer {
  /** `http://127.0.0.1:<port>` */
  base: string
  /** Everything it printed. */
  logs: () => string
  /** SIGTERM, then SIGKILL after 5 s. */
  stop: () => Promise<void>
}

/**
 * Run `nuxi dev <app>` (a path from the repository's root) on loopback as a developer does: not
 * as a test run (no VITEST, TEST or NODE_ENV=test, under which Nuxt DevTools turns itself off),
 * not forked. Resolves once `ready(base)` says so; bounded, as the dev server builds first.
 */
export async function startNuxiDev(app: string, options: { port: number, env?: Record<string, string>, ready: (base: string) => Promise<boolean>, timeout?: number }): Promise<DevServer> {
  const base = `http://127.0.0.1:${options.port}`
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^(?:VITEST.*|TEST|NODE_ENV)$/.test(key)))
  const dev: ChildProcess = spawn(process.execPath, [nuxi, 'dev', app, '--port', String(options.port), '--host', '127.0.0.1', '--no-fork'], {
    cwd: root,
    env: { ...env, NUXT_TELEMETRY_DISABLED: '1', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let log = ''
  dev.stdout!.on('data', (data) => {
    log += data
  })
  dev.stderr!.on('data', (data) => {
    log += data
  })
  const stop = async () => {
    if (dev.exitCode !== null || dev.signalCode !== null) return
    const exited = new Promise(resolve => dev.once('exit', resolve))
    dev.kill('SIGTERM')
    await Promise.race([exited, new Promise(resolve => setTimeout(resolve, 5000))])
    if (dev.exitCode === null) dev.kill('SIGKILL')
  }
  const deadline = Date.now() + (options.timeout ?? 150_000)
  for (;;) {
    if (dev.exitCode !== null) throw new Error(`nuxi dev exited:\n${log}`)
    if (await options.ready(base).catch(() => false)) break
    if (Date.now() > deadline) {
      await stop()
      throw new Error(`nuxi dev ${app} was not ready in time:\n${log}`)
    }
    await new Promise(resolve => setTimeout(resolve, 500))
  }
  return { base, logs: () => log, stop }
}
