import { execFileSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ChatStream, postMessage, until } from '../utils/clients'
import { POSTGRES_URL, startServer, type TestServer } from '../utils/server'

// A database connection that drops (PostgreSQL restarted, a DBA killing sessions) must cost at
// most the request in flight: the next one works on a new connection, and the process lives.
describe('PostgreSQL connection lost', () => {
  const application = `chat-outage-${randomUUID().slice(0, 8)}`
  let server: TestServer
  beforeAll(async () => {
    server = await startServer({ output: 'postgresql', env: { NUXT_CHAT_DATABASE_OPTIONS_URL: `${POSTGRES_URL}?application_name=${application}`, NUXT_CHAT_RATE_LIMIT: 'false' } })
  })
  afterAll(() => server?.stop())

  const killConnections = () => execFileSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'test', '-tAc', `select count(pg_terminate_backend(pid)) from pg_stat_activity where application_name = '${application}'`]).toString().trim()

  it('answers unavailable at most once, then stores on a new connection; nothing stored is lost', async () => {
    const room = `outage-${randomUUID().slice(0, 8)}`
    const base = server.url('').replace(/\/$/, '')
    // One sender throughout (a guest key): cids are de-duplicated per sender.
    const guest = randomUUID().replaceAll('-', '')
    const first = await postMessage(base, { message: 'before', cid: 'c-before' }, { room, guest })
    expect(first.status).toBe(200)
    expect(killConnections()).toBe('1')

    // The request that meets the dead connection may fail (503, retryable); the next ones must not.
    const statuses: number[] = []
    for (let i = 0; i < 3; i++) statuses.push((await postMessage(base, { message: 'after', cid: 'c-after' }, { room, guest })).status)
    expect(statuses.filter(status => status !== 200).length).toBeLessThanOrEqual(1)
    expect(statuses.at(-1)).toBe(200)
    expect(new Set(statuses)).not.toContain(500)

    const reader = await ChatStream.open(base, { room, since: 0 })
    await until(() => reader.messages.length === 2, 'both messages replayed')
    expect(reader.messages.map(message => [message.id, message.message])).toEqual([[1, 'before'], [2, 'after']])
    await reader.close()
    expect(server.process()?.exitCode).toBeNull()
    expect(server.logs()).not.toMatch(/uncaughtException|unhandledRejection/)
  })
})
