import { describe, expect, it } from 'vitest'
import { HeartbeatSlices } from '../../src/runtime/server/utils/heartbeatSlices'

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
})
