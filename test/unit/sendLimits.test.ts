import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { chatDefaults } from '../../src/runtime/defaults'
import { createChatLimits, joinBurstWarning, limitRefusals } from '../../src/runtime/server/utils/chatLimits'
import { createSendLimiter, type AllowSend, type SendInput } from '../../src/runtime/server/utils/sendPipeline'

const person = { rateLimit: { messages: 20, interval: 10_000, burst: 10 }, rateLimitPerIp: { messages: 60, interval: 10_000, burst: 30 } }
// `guest:…` senders are guests (counted per address in full); others are signed in.
const from = (sender: string, ip?: string) => ({ room: 'r', user: { id: sender, name: sender, ...(sender.startsWith('guest:') && { guest: true }) }, sender, message: 'x', ip }) as SendInput
const passed = (allow: AllowSend, input: SendInput, times: number) => Array.from({ length: times }, () => allow(input)).filter(allowed => allowed === true).length

describe('createSendLimiter', () => {
  beforeEach(() => {
    vi.useFakeTimers()
    vi.setSystemTime(0)
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it('gives each person one bucket, whatever connection or POST the message comes from', () => {
    const { allowSend } = createSendLimiter(person)
    expect(passed(allowSend, from('u-alice', '10.0.0.1'), 15)).toBe(10)
    // Another address, same person: still empty.
    expect(allowSend(from('u-alice', '10.0.0.2'))).toMatchObject({ scope: 'person', limit: 'messages', retryAfter: 1 })
    vi.setSystemTime(500)
    expect(passed(allowSend, from('u-alice', '10.0.0.2'), 5)).toBe(1)
    expect(passed(allowSend, from('guest:other', '10.0.0.1'), 5)).toBe(5)
  })

  it('caps an address at its own budget however many people (fresh guests) send from it, taking from both buckets or neither', () => {
    const { allowSend } = createSendLimiter(person)
    let stored = 0
    for (let guest = 0; guest < 100; guest++) stored += passed(allowSend, from(`guest:${guest}`, '10.0.0.9'), 10)
    expect(stored).toBe(30)
    // A refusal by the address took nothing from the person: it still has its whole burst elsewhere.
    expect(passed(allowSend, from('guest:50', '10.0.0.10'), 20)).toBe(10)
    vi.setSystemTime(10_000)
    expect(passed(allowSend, from('guest:fresh', '10.0.0.9'), 100)).toBe(10)
  })

  it('turns off with rateLimit: false; rateLimitPerIp: false keeps the per-person limit only', () => {
    expect(passed(createSendLimiter({ rateLimit: false, rateLimitPerIp: person.rateLimitPerIp }).allowSend, from('a', '10.0.0.1'), 100)).toBe(100)
    const personOnly = createSendLimiter({ ...person, rateLimitPerIp: false }).allowSend
    let stored = 0
    for (let guest = 0; guest < 10; guest++) stored += passed(personOnly, from(`guest:${guest}`, '10.0.0.1'), 10)
    expect(stored).toBe(100)
  })

  it('counts signed-in people per person, and per address only against signedInIpFactor times the guests\' budget, naming the scope', () => {
    const { allowSend } = createSendLimiter({ ...person, signedInIpFactor: 50 })
    let stored = 0
    // 500 people behind one address, one message each: none refused.
    for (let user = 0; user < 500; user++) stored += passed(allowSend, from(`u-${user}`, '10.0.0.7'), 1)
    expect(stored).toBe(500)
    // The address's guests still have their own full budget, and are refused by it with scope address.
    expect(passed(allowSend, from('guest:a', '10.0.0.7'), 10) + passed(allowSend, from('guest:b', '10.0.0.7'), 10) + passed(allowSend, from('guest:c', '10.0.0.7'), 10)).toBe(30)
    expect(allowSend(from('guest:d', '10.0.0.7'))).toMatchObject({ scope: 'address', limit: 'messages' })
    // The signed-in ceiling exists: 1500 at once is its burst.
    for (let user = 500; user < 1600; user++) stored += passed(allowSend, from(`u-${user}`, '10.0.0.7'), 1)
    expect(stored).toBe(1500)
    expect(allowSend(from('u-late', '10.0.0.7'))).toMatchObject({ scope: 'address' })
  })
})

describe('createChatLimits', () => {
  beforeEach(() => {
    vi.useFakeTimers()
    vi.setSystemTime(0)
  })
  afterEach(() => {
    vi.useRealTimers()
  })
  const config = { ...person, historyRateLimit: { messages: 20, interval: 10_000, burst: 10 }, historyRateLimitPerIp: { messages: 40, interval: 10_000, burst: 20 }, historyBytes: { bytes: 1000, interval: 10_000 }, readRateLimit: false as const, readRateLimitPerIp: false as const, newRoomRateLimit: false as const, newRoomRateLimitPerIp: false as const, joinRateLimit: false as const, joinRateLimitPerIp: false as const, signedInIpFactor: 50 }

  it('refuses history once the bytes served run past the budget, until the debt refills, with the wait in whole seconds', () => {
    const limits = createChatLimits(config)
    const guest = { person: 'guest:x', ip: '10.0.0.1', guest: true }
    expect(limits.take('history', guest)).toBeUndefined()
    limits.chargeHistoryBytes(guest, 1500)
    // 500 bytes of debt at 100 bytes/s: 5 s (and one byte more) before the next page.
    expect(limits.take('history', guest)).toEqual({ scope: 'person', limit: 'history', retryAfter: 6 })
    vi.setSystemTime(6000)
    expect(limits.take('history', guest)).toBeUndefined()
  })

  it('gives one person\'s store replays their turns one after another, each once the byte budget has room', async () => {
    const limits = createChatLimits(config)
    const reader = { person: 'user-r', ip: '10.0.0.9', guest: false }
    const order: string[] = []
    // Three joins at once: each passed the check as it started, none is charged yet.
    const turns = ['a', 'b', 'c'].map(name => limits.replayTurn(reader).then((release) => {
      order.push(name)
      // Its replay is sent and charged within its turn: 900 bytes of the 1,000.
      limits.chargeHistoryBytes(reader, 900)
      release()
    }))
    await vi.advanceTimersByTimeAsync(0)
    // The second waits for room: 800 bytes of debt at 100 bytes/s.
    expect(order).toEqual(['a', 'b'])
    await vi.advanceTimersByTimeAsync(5000)
    expect(order).toEqual(['a', 'b'])
    await vi.advanceTimersByTimeAsync(5000)
    await Promise.all(turns)
    expect(order).toEqual(['a', 'b', 'c'])
    // Another person is not behind them; with no byte budget nobody waits.
    expect(await Promise.race([limits.replayTurn({ person: 'user-s', ip: '10.0.0.9', guest: false }).then(() => 'turn'), vi.advanceTimersByTimeAsync(0).then(() => 'waiting')])).toBe('turn')
    const unbounded = createChatLimits({ ...config, historyBytes: false })
    unbounded.chargeHistoryBytes(reader, 10_000)
    expect(await Promise.race([unbounded.replayTurn(reader).then(() => 'turn'), vi.advanceTimersByTimeAsync(0).then(() => 'waiting')])).toBe('turn')
  })

  it('refuses a guest\'s history by its address when many guest ids share it, and takes nothing when refused', () => {
    const limits = createChatLimits({ ...config, historyBytes: false })
    let served = 0
    for (let guest = 0; guest < 30; guest++) if (!limits.take('history', { person: `guest:${guest}`, ip: '10.0.0.2', guest: true })) served++
    expect(served).toBe(20)
    expect(limits.take('history', { person: 'guest:fresh', ip: '10.0.0.2', guest: true })).toMatchObject({ scope: 'address', limit: 'history' })
    // The refused guest's own bucket is untouched: from another address it has its whole burst.
    let elsewhere = 0
    for (let page = 0; page < 15; page++) if (!limits.take('history', { person: 'guest:fresh', ip: '10.0.0.3', guest: true })) elsewhere++
    expect(elsewhere).toBe(10)
  })

  it('charges a new room\'s named members as invites, past empty, and takes nothing from either count when one refuses', () => {
    const limits = createChatLimits({ ...config, newRoomRateLimit: { messages: 1, interval: 60_000, burst: 2 } })
    const founder = { person: 'u-founder', ip: '10.0.0.4', guest: false }
    // A room of 30: made at once with the burst of 10, leaving 20 of debt (at 2 a second: 10.5 s until one token).
    expect(limits.takeNewRoom(founder, 30)).toBeUndefined()
    expect(limits.take('messages', founder)).toEqual({ scope: 'person', limit: 'messages', retryAfter: 11 })
    expect(limits.takeNewRoom(founder, 1)).toEqual({ scope: 'person', limit: 'messages', retryAfter: 11 })
    // That refusal took no `rooms` token: after the debt, one more room is left of the burst of 2, then none.
    vi.setSystemTime(10_500)
    expect(limits.takeNewRoom(founder, 0)).toBeUndefined()
    expect(limits.takeNewRoom(founder, 1)).toEqual({ scope: 'person', limit: 'rooms', retryAfter: expect.any(Number) })
    expect(limits.take('messages', founder)).toBeUndefined()
  })
})

describe('the joins limit', () => {
  beforeEach(() => {
    vi.useFakeTimers()
    vi.setSystemTime(0)
  })
  afterEach(() => {
    vi.useRealTimers()
  })
  const { joinRateLimit, joinRateLimitPerIp, signedInIpFactor, maxRoomsPerConnection } = chatDefaults
  const off = { rateLimit: false as const, rateLimitPerIp: false as const, historyRateLimit: false as const, historyRateLimitPerIp: false as const, historyBytes: false as const, readRateLimit: false as const, readRateLimitPerIp: false as const, newRoomRateLimit: false as const, newRoomRateLimitPerIp: false as const }
  const defaults = { ...off, joinRateLimit, joinRateLimitPerIp, signedInIpFactor }
  const joined = (limits: ReturnType<typeof createChatLimits>, subject: { person: string, ip?: string, guest?: boolean }, times: number) => Array.from({ length: times }, () => limits.takeJoin(subject)).filter(refused => !refused).length

  it('lets a tab rejoin the most rooms one connection may follow at once, twice, then refuses the churn at the refill\'s pace, naming joins, person and the wait', () => {
    const limits = createChatLimits(defaults)
    const alice = { person: 'u-alice', ip: '10.0.0.1', guest: false }
    // A tab with `maxRoomsPerConnection` rooms, and the same tab reconnecting right after.
    expect(joined(limits, alice, maxRoomsPerConnection)).toBe(maxRoomsPerConnection)
    expect(joined(limits, alice, maxRoomsPerConnection)).toBe(maxRoomsPerConnection)
    const before = limitRefusals.get('joins|person|signed_in') ?? 0
    expect(limits.takeJoin(alice)).toEqual({ scope: 'person', limit: 'joins', retryAfter: 1 })
    expect(limitRefusals.get('joins|person|signed_in')).toBe(before + 1)
    // Churn for 10 s: 20 joins pass (2 a second), whatever is asked.
    let passed = 0
    for (let at = 0; at < 10_000; at += 10) {
      vi.setSystemTime(at)
      passed += joined(limits, alice, 5)
    }
    expect(passed).toBeGreaterThanOrEqual(19)
    expect(passed).toBeLessThanOrEqual(20)
    // Another person, same address: their own full burst.
    expect(joined(limits, { person: 'u-bob', ip: '10.0.0.1', guest: false }, 250)).toBe(200)
  })

  it('counts fresh guests of one address together, takes nothing from any count when one refuses, and turns off with false', () => {
    const limits = createChatLimits(defaults)
    let passed = 0
    for (let guest = 0; guest < 40; guest++) passed += joined(limits, { person: `guest:${guest}`, ip: '10.0.0.2', guest: true }, 10)
    expect(passed).toBe(300)
    expect(limits.takeJoin({ person: 'guest:late', ip: '10.0.0.2', guest: true })).toEqual({ scope: 'address', limit: 'joins', retryAfter: 1 })
    // The refused guest's own bucket is untouched: from another address it has its whole burst.
    expect(joined(limits, { person: 'guest:late', ip: '10.0.0.3', guest: true }, 250)).toBe(200)
    expect(joined(createChatLimits({ ...defaults, joinRateLimit: false, joinRateLimitPerIp: false }), { person: 'guest:x', ip: '10.0.0.4', guest: true }, 1000)).toBe(1000)
  })

  it('refuses a join while the history byte budget is spent, as history, and takes no join token then', () => {
    const limits = createChatLimits({ ...defaults, historyBytes: { bytes: 1000, interval: 10_000 }, joinRateLimit: { messages: 1, interval: 60_000, burst: 2 } })
    const reader = { person: 'u-reader', ip: '10.0.0.5', guest: false }
    limits.chargeHistoryBytes(reader, 1500)
    expect(limits.takeJoin(reader)).toEqual({ scope: 'person', limit: 'history', retryAfter: 6 })
    vi.setSystemTime(6000)
    // Both join tokens are still there.
    expect(joined(limits, reader, 3)).toBe(2)
  })

  it('warns when a burst is below maxRoomsPerConnection, not with the defaults', () => {
    expect(joinBurstWarning(chatDefaults)).toBeUndefined()
    expect(joinBurstWarning({ ...chatDefaults, joinRateLimit: false })).toBeUndefined()
    expect(joinBurstWarning({ ...chatDefaults, joinRateLimit: { messages: 1, interval: 1000, burst: 50 } })).toMatch(/joinRateLimit\.burst is below maxRoomsPerConnection \(100\)/)
  })
})
