import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { chmodSync, existsSync, mkdtempSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { until } from './clients'
import { freePort } from './server'

/** Another process (node:sqlite) holding `BEGIN IMMEDIATE` on the SQLite file at `path` for `ms`. */
export async function holdSqliteLock(path: string, ms: number) {
  const child = spawn(process.execPath, ['-e', `
    const db = new (require('node:sqlite').DatabaseSync)(${JSON.stringify(path)})
    // The log's own writes (its search index's catch-up) may hold the lock for a moment: wait for it, as any writer would.
    db.exec('PRAGMA busy_timeout = 5000')
    db.exec('BEGIN IMMEDIATE')
    process.stdout.write('locked\\n')
    setTimeout(() => { db.exec('COMMIT'); db.close() }, ${ms})
  `], { stdio: ['ignore', 'pipe', 'inherit'] })
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve())
    child.once('exit', code => reject(new Error(`lock holder exited with ${code}`)))
  })
  return { released: new Promise(resolve => child.once('exit', resolve)) }
}

/** Make files read-only for everyone, root included (ext4 immutable flag), or writable again. */
export function setImmutable(paths: string[], on: boolean) {
  execFileSync('chattr', [on ? '+i' : '-i', ...paths.filter(path => existsSync(path))])
}

/**
 * A redis-server of the test's own on a free port (never the shared one), which it may stop,
 * restart or keep busy; with `password`, it requires it and `url` carries it.
 */
export async function ownRedis({ password }: { password?: string } = {}) {
  const port = await freePort()
  let child: ChildProcess | undefined
  const auth = password ? ['-a', password, '--no-auth-warning'] : []
  const cli = (...args: string[]) => execFileSync('redis-cli', ['-p', String(port), ...auth, ...args], { stdio: 'pipe' }).toString().trim()
  const up = () => {
    try {
      return cli('ping') === 'PONG'
    }
    catch {
      return false
    }
  }
  const start = async () => {
    // A script running longer than 100 ms makes every other command answer BUSY.
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--busy-reply-threshold', '100', ...(password ? ['--requirepass', password] : [])], { stdio: 'ignore' })
    await until(() => up(), 'own Redis to answer', 10_000)
  }
  const stop = async () => {
    const running = child
    // A killed process has a signalCode, not an exitCode: stopping twice must not wait forever.
    if (!running || running.exitCode !== null || running.signalCode !== null) return
    const exited = new Promise(resolve => running.once('exit', resolve))
    running.kill('SIGKILL')
    await exited
  }
  /** Run a Lua loop that never ends: Redis answers BUSY until `SCRIPT KILL`. */
  const busy = async () => {
    const script = spawn('redis-cli', ['-p', String(port), ...auth, 'EVAL', 'while true do end', '0'], { stdio: 'ignore' })
    const answer = () => {
      try {
        return cli('ping')
      }
      catch (error) {
        return String((error as { stdout?: Buffer }).stdout ?? error)
      }
    }
    await until(() => /BUSY/.test(answer()), 'Redis to answer BUSY', 5000)
    return async () => {
      cli('SCRIPT', 'KILL')
      await new Promise(resolve => script.once('exit', resolve))
    }
  }
  await start()
  return { url: `redis://${password ? `:${encodeURIComponent(password)}@` : ''}127.0.0.1:${port}`, port, start, stop, busy }
}

const postgresBin = () => {
  const versions = readdirSync('/usr/lib/postgresql').sort((a, b) => Number(b) - Number(a))
  return `/usr/lib/postgresql/${versions[0]}/bin`
}

/** A PostgreSQL cluster of the test's own (initdb in a temp dir, a free port, run as user postgres), which it may stop and kill. */
export async function ownPostgres() {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'nuxt-chat-pg-'))
  chmodSync(dir, 0o777)
  const data = join(dir, 'data')
  const asPostgres = (command: string, ...args: string[]) => execFileSync('runuser', ['-u', 'postgres', '--', `${postgresBin()}/${command}`, ...args], { stdio: 'pipe' })
  asPostgres('initdb', '-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync')
  const start = async () => {
    asPostgres('pg_ctl', '-D', data, '-l', join(dir, 'log'), '-w', '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`, 'start')
  }
  /** `immediate`: the server dies at once, as on a crash (no clean shutdown of sessions). */
  const stop = async (mode: 'fast' | 'immediate' = 'fast') => {
    try {
      asPostgres('pg_ctl', '-D', data, '-m', mode, '-w', 'stop')
    }
    catch {
      // Already stopped.
    }
  }
  return { url: `postgresql://postgres@127.0.0.1:${port}/postgres`, port, start, stop, remove: () => execFileSync('rm', ['-rf', dir]) }
}
