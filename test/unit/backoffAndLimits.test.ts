import { describe, expect, it } from 'vitest'
import { backoffDelay } from '../../src/runtime/app/backoff'
import { createRateLimiter, createTokenBucket, takeToken } from '../../src/runtime/server/utils/rateLimit'

describe('backoffDelay', () => {
  const options = { delay: 500, maxDelay: 10_000 }
  it('doubles per attempt between half and all of the ceiling', () => {
    expect(backoffDelay(0, options, () => 0)).toBe(250)
    expect(backoffDelay(0, options, () => 1)).toBe(500)
    expect(backoffDelay(3, options, () => 0)).toBe(2000)
    expect(backoffDelay(3, options, () => 1)).toBe(4000)
  })
  it('is capped at maxDelay however many attempts', () => {
    expect(backoffDelay(50, options, () => 1)).toBe(10_000)
    expect(backoffDelay(5000, options, () => 0.5)).toBe(7500)
  })
  it('spreads clients out (jitter)', () => {
    const delays = new Set(Array.from({ length: 50 }, () => backoffDelay(4, options)))
    expect(delays.size).toBeGreaterThan(10)
  })
})

describe('token bucket', () => {
  const options = { messages: 20, interval: 10_000, burst: 10 }
  it('lets a burst through, then refuses until tokens refill', () => {
    const bucket = createTokenBucket(options, 0)
    for (let i = 0; i < 10; i++) expect(takeToken(bucket, options, 0)).toBe(true)
    expect(takeToken(bucket, options, 0)).toBe(false)
    // 20 per 10 s: one token every 500 ms.
    expect(takeToken(bucket, options, 499)).toBe(false)
    // By 1 s two tokens have refilled.
    expect(takeToken(bucket, options, 1000)).toBe(true)
    expect(takeToken(bucket, options, 1000)).toBe(true)
    expect(takeToken(bucket, options, 1000)).toBe(false)
  })
  it('never holds more than the burst', () => {
    const bucket = createTokenBucket(options, 0)
    takeToken(bucket, options, 1_000_000)
    expect(bucket.tokens).toBe(9)
  })
  it('keeps one bucket per key and forgets full ones', () => {
    const limiter = createRateLimiter(options)
    for (let i = 0; i < 10; i++) limiter.take('a', 0)
    expect(limiter.take('a', 0)).toBe(false)
    expect(limiter.take('b', 0)).toBe(true)
    limiter.sweep(60_000)
    expect(limiter.size).toBe(0)
  })
})
