import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createSendLimiter, type SendInput } from '../../src/runtime/server/utils/sendPipeline'

const person = { rateLimit: { messages: 20, interval: 10_000, burst: 10 }, rateLimitPerIp: { messages: 60, interval: 10_000, burst: 30 } }
const from = (sender: string, ip?: string) => ({ room: 'r', user: { id: sender, name: sender }, sender, message: 'x', ip }) as SendInput
const passed = (allow: (input: SendInput) => boolean, input: SendInput, times: number) => Array.from({ length: times }, () => allow(input)).filter(Boolean).length

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
    expect(allowSend(from('u-alice', '10.0.0.2'))).toBe(false)
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
})
