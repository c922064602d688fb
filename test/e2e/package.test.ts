/**
 * The package as npm publishes it: `npm pack` with its lifecycle scripts, installed into a new
 * Nuxt app outside the repository (the README's nuxt.config.ts and page, nothing else), type
 * checked, built, started from another folder, and two clients chat. Needs the npm registry or
 * a warm npm cache (`--prefer-offline`).
 */
import { execFile, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ChatSocket } from '../utils/clients'
import { oldNode } from '../utils/oldNode'
import { readmeFiles } from '../utils/readme'
import { startServer, type TestServer } from '../utils/server'

const run = promisify(execFile)
const root = fileURLToPath(new URL('../..', import.meta.url))
const installedVersion = (name: string) => JSON.parse(readFileSync(join(root, `node_modules/${name}/package.json`), 'utf8')).version as string
/**
 * The new app gets the Nuxt and Vite that the repo's lock tests, not whatever npm resolves today:
 * an upstream release can break every fresh build (Vite 8.4.1 did; see the README's Quick setup).
 */
const pinned = { nuxt: installedVersion('nuxt'), vite: installedVersion('vite') }
// npm and nuxi on the repo's Node 24, without the settings of an outer `npm test`.
const env = {
  ...Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.toLowerCase().startsWith('npm_'))),
  PATH: [join(root, 'node_modules/.bin'), dirname(process.execPath), process.env.PATH].join(delimiter),
  NUXT_TELEMETRY_DISABLED: '1',
}
const exec = (command: string, args: string[], cwd: string) => run(command, args, { cwd, env, maxBuffer: 64 * 1024 * 1024 })

/** Every file under `dir`, relative to it. */
function filesUnder(dir: string, prefix = ''): string[] {
  return readdirSync(join(dir, prefix)).flatMap((name) => {
    const path = prefix ? `${prefix}/${name}` : name
    return statSync(join(dir, path)).isDirectory() ? filesUnder(dir, path) : [path]
  })
}

describe('the packed module in a new app', () => {
  let work: string
  let app: string
  let pack: { filename: string, size: number, unpackedSize: number, files: { path: string }[] }
  const servers: TestServer[] = []
  const timings: Record<string, number> = {}
  const timed = async <T>(what: string, step: () => Promise<T>) => {
    const start = Date.now()
    try {
      return await step()
    }
    finally {
      timings[what] = Date.now() - start
    }
  }

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'nuxt-chat-pack-'))
    const { stdout } = await timed('npm pack', () => exec('npm', ['pack', '--json', '--pack-destination', work], root))
    // After the lifecycle scripts' own output.
    pack = JSON.parse(stdout.slice(stdout.search(/^\[$/m)))[0]
    app = join(work, 'app')
    mkdirSync(join(app, 'app/pages'), { recursive: true })
    writeFileSync(join(app, 'package.json'), JSON.stringify({
      name: 'chat-app',
      private: true,
      type: 'module',
      dependencies: { 'nuxt': pinned.nuxt, 'nuxt-chat': `file:${join(work, pack.filename)}` },
      overrides: { vite: pinned.vite },
    }, null, 2))
    for (const file of ['nuxt.config.ts', 'app/pages/index.vue']) writeFileSync(join(app, file), readmeFiles().get(file)!)
    const install = () => exec('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], app)
    // One retry: the registry or the shared npm cache can fail a request on a busy machine.
    await timed('npm install', () => install().catch((error) => {
      console.warn(`[package] npm install failed, retrying once: ${error.stderr || error.message}`)
      return install()
    }))
    await timed('nuxi build', () => exec(process.execPath, [join(app, 'node_modules/@nuxt/cli/bin/nuxi.mjs'), 'build'], app))
  }, 600_000)

  afterAll(async () => {
    await Promise.all(servers.map(server => server.stop()))
    console.info(`[package] ${pack?.filename}: ${pack?.files.length} files, ${pack?.size} B packed, ${pack?.unpackedSize} B unpacked; ${Object.entries(timings).map(([what, ms]) => `${what} ${(ms / 1000).toFixed(1)} s`).join(', ')}`)
    if (work) rmSync(work, { recursive: true, force: true })
  })

  it('ships a complete build and nothing else: no sources, no dev stub, no path of this machine', () => {
    const files = pack.files.map(file => file.path).sort()
    expect(files.filter(file => !/^(?:dist\/|package\.json$|README\.md$|CHANGELOG\.md$|LICENSE)/.test(file))).toEqual([])
    expect(files).toEqual(expect.arrayContaining([
      'dist/module.mjs', 'dist/module.json', 'dist/types.d.mts',
      'dist/runtime/app/composables/useChat.js', 'dist/runtime/server/plugins/chat.js', 'dist/runtime/server/api/ws.js',
    ]))
    const installed = join(app, 'node_modules/nuxt-chat')
    expect(filesUnder(installed).sort()).toEqual(files)
    for (const file of files) {
      const text = readFileSync(join(installed, file), 'utf8')
      for (const machinePath of [root, root.replace(/\/$/, ''), homedir(), work]) expect(text, file).not.toContain(machinePath)
    }
    // The dev stub loads src/ through jiti; the real build does not.
    expect(readFileSync(join(installed, 'dist/module.mjs'), 'utf8')).not.toMatch(/jiti|\/src\/module/)
  })

  it('type-checks the README\'s page with only nuxt and nuxt-chat installed', async () => {
    const vueTsc = join(root, 'node_modules/vue-tsc/bin/vue-tsc.js')
    await timed('vue-tsc', async () => {
      for (const project of ['tsconfig.app.json', 'tsconfig.server.json']) {
        const result = await exec(process.execPath, [vueTsc, '--noEmit', '-p', join(app, '.nuxt', project)], app).catch(error => error)
        expect(`${result.stdout}${result.stderr}`, project).toBe('')
      }
    })
  }, 180_000)

  it('runs from another folder with the history in the app\'s .data, and two clients chat', async () => {
    const entry = join(app, '.output/server/index.mjs')
    // TEST='' lets consola print info lines (vitest sets TEST, which quiets them).
    const server = await startServer({ entry, cwd: join(app, '.output'), databaseCwd: false, env: { TEST: '' } })
    servers.push(server)
    expect(server.logs()).toContain(`history: ${join(app, '.data/chat.sqlite')}`)
    const page = await fetch(server.url('/'))
    expect(page.status).toBe(200)
    expect(await page.text()).toContain('online')

    const ada = await ChatSocket.open(server.wsUrl(''), { room: 'pack', name: 'Ada' })
    const bob = await ChatSocket.open(server.wsUrl(''), { room: 'pack', name: 'Bob' })
    ada.send('hello from a packed module')
    const heard = await bob.waitFor(frame => frame.type === 'message' && frame.message === 'hello from a packed module', 'Bob hears Ada')
    expect(heard).toMatchObject({ user: 'Ada', room: 'pack', id: 1 })
    await Promise.all([ada.close(), bob.close()])
    await server.stop()

    // Started from the app's root this time: the same file, so the same history.
    const again = await startServer({ entry, cwd: app, databaseCwd: false, env: { TEST: '' } })
    servers.push(again)
    const carol = await ChatSocket.open(again.wsUrl(''), { room: 'pack', name: 'Carol' })
    await carol.waitFor(frame => frame.type === 'message' && frame.message === 'hello from a packed module', 'the replayed message')
    await carol.close()
  })

  it('stops a Node.js without node:sqlite with one line naming the version it needs', () => {
    const node = oldNode()
    expect(node, 'a Node.js < 22.5 on this machine (the system Node 20)').toBeTruthy()
    const result = spawnSync(node!, [join(app, '.output/server/index.mjs')], {
      cwd: app,
      env: { ...env, PORT: '0', HOST: '127.0.0.1', NODE_ENV: 'production' },
      encoding: 'utf8',
      timeout: 20_000,
    })
    expect(result.status).toBe(1)
    const lines = `${result.stdout}${result.stderr}`.trim().split('\n')
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/needs Node\.js >= 22\.5; this is Node\.js v2[01]\./)
  })
})
