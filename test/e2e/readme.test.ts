/**
 * The README's snippets, as test/fixtures/readme-snippets holds them (with nuxt-auth-utils
 * installed): they type-check, build, and do what the README says at a real WebSocket upgrade.
 */
import { execFile, execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ChatSocket, upgradeStatus } from '../utils/clients'
import { startServer, type TestServer } from '../utils/server'

const fixture = fileURLToPath(new URL('../fixtures/readme-snippets', import.meta.url))
const nuxi = fileURLToPath(new URL('../../node_modules/@nuxt/cli/bin/nuxi.mjs', import.meta.url))
const vueTsc = fileURLToPath(new URL('../../node_modules/vue-tsc/bin/vue-tsc.js', import.meta.url))
const run = promisify(execFile)

describe('the README\'s snippets', () => {
  let server: TestServer
  const room = (label: string) => `${label}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`

  beforeAll(async () => {
    // Built here, not in globalSetup: only this file needs it (CHAT_SKIP_BUILD=1 reuses it).
    if (!process.env.CHAT_SKIP_BUILD || !existsSync(`${fixture}/.output`)) execFileSync(process.execPath, [nuxi, 'build', fixture], { stdio: 'pipe' })
    server = await startServer({ entry: `${fixture}/.output/server/index.mjs`, env: { NUXT_SESSION_PASSWORD: 'a-test-password-of-at-least-32-characters' } })
  }, 300_000)

  afterAll(() => server?.stop())

  it.each(['app', 'server'])('type-check (%s)', async (side) => {
    const result = await run(process.execPath, [vueTsc, '--noEmit', '-p', `${fixture}/.nuxt/tsconfig.${side}.json`]).catch(error => error)
    expect(`${result.stdout}${result.stderr}`).toBe('')
  }, 180_000)

  /** Sign in through nuxt-auth-utils (the fixture's login route) and return the session cookie. */
  async function signIn(user: { id: string, name: string, roles?: string[] }) {
    const response = await fetch(server.url('/api/login'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(user) })
    expect(response.status).toBe(200)
    return response.headers.getSetCookie().map(cookie => cookie.split(';')[0]).join('; ')
  }

  it('nuxt-auth-utils: the session names the peer and guards private rooms', async () => {
    const ada = await signIn({ id: 'u-ada', name: 'Ada', roles: ['staff'] })
    const bob = await signIn({ id: 'u-bob', name: 'Bob' })
    const privateRoom = room('private')
    const socket = await ChatSocket.open(server.wsUrl(''), { room: privateRoom, name: 'Someone else' }, { headers: { cookie: ada } })
    const welcome = await socket.waitFor(frame => frame.type === 'system' && frame.event === 'welcome', 'the welcome')
    expect(welcome.peer).toEqual({ id: 'u-ada', name: 'Ada' })
    await socket.close()

    const url = server.wsUrl(`/_ws?room=${privateRoom}`)
    expect(await upgradeStatus(url)).toBe(401)
    expect(await upgradeStatus(url, { headers: { cookie: bob } })).toBe(403)
    expect(await upgradeStatus(url, { headers: { cookie: ada.replace(/=(.)/, '=x$1') } })).toBe(401)
    // Other rooms stay open to guests.
    expect(await upgradeStatus(server.wsUrl(`/_ws?room=${room('lobby')}`))).toBe(101)
  })

  it('the generic hooks: identify from the app\'s own session, rewrite and refuse messages', async () => {
    const staffRoom = room('staff')
    expect(await upgradeStatus(server.wsUrl(`/_ws?room=${staffRoom}`))).toBe(401)
    const grace = await ChatSocket.open(server.wsUrl(''), { room: staffRoom }, { headers: { cookie: 'demo=grace' } })
    const welcome = await grace.waitFor(frame => frame.type === 'system' && frame.event === 'welcome', 'the welcome')
    expect(welcome.peer).toEqual({ id: 'u-grace', name: 'Grace' })
    grace.send('darn it')
    await grace.waitFor(frame => frame.type === 'message' && frame.message === 'd**n it', 'the rewritten message')
    grace.send('a forbidden word')
    const refused = await grace.waitFor(frame => frame.type === 'error', 'the refusal')
    expect(refused).toMatchObject({ code: 'rejected', message: 'contains a forbidden word' })
    await grace.close()
  })
})
