import { describe, expect, it } from 'vitest'
import { HeartbeatSlices, heartbeatSliceCount } from '../../src/runtime/server/utils/heartbeatSlices'

describe('heartbeat slices', () => {
  it('visits only one slice of the connections per tick, and each connection once per round', () => {
    const slices = new HeartbeatSlices<number>(25)
    for (let i = 0; i < 1000; i++) slices.add(i)
    const visits = new Map<number, number>()
    const perTick: number[] = []
    for (let tick = 0; tick < 25; tick++) {
      let visited = 0
      const counted = slices.tick((item) => {
        visited++
        visits.set(item, (visits.get(item) ?? 0) + 1)
      })
      expect(counted).toBe(visited)
      perTick.push(visited)
    }
    expect(perTick).toEqual(Array.from({ length: 25 }, () => 40))
    expect(visits.size).toBe(1000)
    expect([...visits.values()].every(count => count === 1)).toBe(true)
  })

  it('stops visiting a deleted connection', () => {
    const slices = new HeartbeatSlices<string>(3)
    const a = slices.add('a')
    slices.add('b')
    slices.add('c')
    slices.delete('a', a)
    const seen: string[] = []
    for (let tick = 0; tick < 3; tick++) slices.tick(item => seen.push(item))
    expect(seen.sort()).toEqual(['b', 'c'])
  })

  it('ticks about every 100 ms: 10,000 connections cost each tick ~40 pings, not 400 (a ~10 ms stall at 1,000 msg/s)', () => {
    const count = heartbeatSliceCount(25_000)
    expect(25_000 / count).toBeLessThanOrEqual(100)
    expect(Math.ceil(10_000 / count)).toBeLessThanOrEqual(40)
    // Short intervals (tests) keep 25 slices rather than sub-millisecond ticks; huge ones are bounded.
    expect(heartbeatSliceCount(200)).toBe(25)
    expect(heartbeatSliceCount(10_000_000)).toBe(1000)
    expect(new HeartbeatSlices(count).count).toBe(count)
  })
})
