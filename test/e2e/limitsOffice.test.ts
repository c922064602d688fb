/**
 * Limits that fit real deployments (issue 28; docs/PROTOCOL.md, "Limits"), caused for real
 * against the built fixture: an office of 500 signed-in people behind one address, the same
 * number of guests, one person with 50 tabs, and the metrics that tell them apart. Long (two
 * 30 s runs): in the floods group of `npm test`; the platform rows run limitsModel.test.ts.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ChatSocket } from '../utils/clients'
import { openOrRefused, until } from '../utils/clients'
import { startServer, type TestServer } from '../utils/server'

const uniqueRoom = (prefix = 'lo') => `${prefix}-${randomUUID().slice(0, 8)}`
const wsBase = (server: TestServer) => `ws://127.0.0.1:${server.port}`
const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))
const cookieOf = (user: string) => ({ cookie: `session=user-${user}` })

/** One run of issue 28: `people` connect from one address (in waves, as people arrive) and send one message per 10 s for 30 s. */
async function officeRun(target: TestServer, people: number, signedIn: boolean) {
  const runId = randomUUID().slice(0, 6)
  const rooms = Array.from({ length: 10 }, (_, index) => uniqueRoom(`office${index}`))
  const sockets: { socket: ChatSocket, index: number }[] = []
  const connectRefusals: Record<string, unknown>[] = []
  for (let wave = 0; wave < people; wave += 25) {
    const opened = await Promise.all(Array.from({ length: Math.min(25, people - wave) }, (_, offset) => {
      const index = wave + offset
      return openOrRefused(`${wsBase(target)}/_ws?room=${rooms[index % rooms.length]}`, signedIn ? cookieOf(`o${runId}-${index}`) : {}).then(result => ({ result, index }))
    }))
    for (const { result, index } of opened) {
      if ('socket' in result) sockets.push({ socket: result.socket, index })
      else connectRefusals.push({ status: result.status, ...result.body })
    }
    await sleep(100)
  }
  await Promise.all(sockets.map(({ socket }) => socket.waitFor(frame => frame.type === 'presence', 'presence', 20_000)))
  const start = Date.now()
  const sends = sockets.map(async ({ socket, index }) => {
    const offset = Math.random() * 10_000
    for (let round = 0; round < 3; round++) {
      await sleep(Math.max(0, start + offset + round * 10_000 - Date.now()))
      socket.send({ type: 'message', message: `hello ${index}.${round}`, cid: `c${index}-${round}` })
    }
  })
  await Promise.all(sends)
  // Every message answered: stored (its echo with the cid) or refused.
  const answered = (socket: ChatSocket, index: number, round: number) => socket.frames.some(frame => frame.cid === `c${index}-${round}`)
  await until(() => sockets.every(({ socket, index }) => [0, 1, 2].every(round => answered(socket, index, round))), 'every message answered', 30_000)
  let stored = 0
  const refused: Record<string, number> = {}
  for (const { socket, index } of sockets) {
    for (let round = 0; round < 3; round++) {
      const answer = socket.frames.find(frame => frame.cid === `c${index}-${round}`)!
      if (answer.type === 'message') stored++
      else refused[`${answer.code}/${answer.scope ?? 'none'}`] = (refused[`${answer.code}/${answer.scope ?? 'none'}`] ?? 0) + 1
    }
  }
  const connectRefusedByScope: Record<string, number> = {}
  for (const refusal of connectRefusals) connectRefusedByScope[`${refusal.status}/${refusal.scope ?? 'none'}`] = (connectRefusedByScope[`${refusal.status}/${refusal.scope ?? 'none'}`] ?? 0) + 1
  await Promise.all(sockets.map(({ socket }) => socket.close()))
  return { connected: sockets.length, connectRefusedByScope, stored, refused }
}

describe('limits that fit real deployments (issue 28)', () => {
  let office: TestServer
  beforeAll(async () => {
    office = await startServer()
  })
  afterAll(async () => {
    await office?.stop()
  })

  it('500 signed-in people behind one address, one message per 10 s for 30 s each: none refused', async () => {
    const run = await officeRun(office, 500, true)
    console.info(`[figures] 500 signed-in, one address: ${JSON.stringify(run)}`)
    expect(run).toEqual({ connected: 500, connectRefusedByScope: {}, stored: 1500, refused: {} })
  }, 120_000)

  it('500 guests from one address doing the same: bounded by the per-address limits, refusals naming the address', async () => {
    const run = await officeRun(office, 500, false)
    console.info(`[figures] 500 guests, one address: ${JSON.stringify(run)}`)
    expect(run.connected).toBe(100)
    expect(run.connectRefusedByScope).toEqual({ '429/address': 400 })
    // The address's message budget: a burst of 30 and 6 a second over the ~30 s run.
    expect(run.stored).toBeLessThanOrEqual(30 + 6 * 32)
    expect(Object.keys(run.refused)).toEqual(['rate_limited/address'])
  }, 120_000)

  it('one signed-in person opening 50 connections: capped per person, told so', async () => {
    const user = `tabs-${randomUUID().slice(0, 8)}`
    const room = uniqueRoom('tabs')
    const results = await Promise.all(Array.from({ length: 50 }, () => openOrRefused(`${wsBase(office)}/_ws?room=${room}`, cookieOf(user))))
    const open = results.filter(result => 'socket' in result) as { socket: ChatSocket }[]
    const refused = results.filter(result => !('socket' in result)) as { status: number, body: Record<string, unknown> }[]
    console.info(`[figures] one signed-in person, 50 connections: ${open.length} open, ${refused.length} refused`)
    expect(open).toHaveLength(20)
    expect(refused[0]).toMatchObject({ status: 429, body: { code: 'rate_limited', scope: 'person', limit: 'connections' } })
    // Another person at the same address is not affected.
    const other = await openOrRefused(`${wsBase(office)}/_ws?room=${room}`, cookieOf(`${user}-colleague`))
    expect('socket' in other).toBe(true)
    await Promise.all([...open.map(({ socket }) => socket.close()), 'socket' in other ? other.socket.close() : undefined])
  })

  it('the metrics count refusals by limit, scope and who', async () => {
    const text = await fetch(office.url('/_chat/metrics')).then(response => response.text())
    const sample = (labels: string) => Number(new RegExp(`^nuxt_chat_rate_limited_total\\{${labels.replaceAll('"', '\\"')}\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0)
    expect(sample('limit="connections",scope="address",who="guest"')).toBeGreaterThanOrEqual(400)
    expect(sample('limit="connections",scope="person",who="signed_in"')).toBeGreaterThanOrEqual(30)
    expect(sample('limit="messages",scope="address",who="guest"')).toBeGreaterThan(0)
    expect(text).not.toMatch(/nuxt_chat_rate_limited_total\{limit="messages",scope="address",who="signed_in"\}/)
  })
})
