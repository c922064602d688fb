import { describe, expect, it } from 'vitest'
import { ConnectionHold, holdConnection, holdPending } from '../../src/runtime/server/utils/connectionCaps'

const caps = { maxConnectionsPerIp: 2, maxConnectionsPerUser: 3, signedInIpFactor: 2 }

describe('holdConnection', () => {
  it('counts guests per address up to the cap and frees a slot once per release', () => {
    const first = holdConnection({ person: 'guest:a', ip: '198.51.100.1', guest: true }, caps) as ConnectionHold
    const second = holdConnection({ person: 'guest:b', ip: '198.51.100.1', guest: true }, caps) as ConnectionHold
    expect(holdConnection({ person: 'guest:c', ip: '198.51.100.1', guest: true }, caps)).toEqual({ scope: 'address', limit: 'connections', retryAfter: 5 })
    first.release()
    first.release()
    expect(holdConnection({ person: 'guest:c', ip: '198.51.100.1', guest: true }, caps)).toBeInstanceOf(ConnectionHold)
    expect(holdPending('198.51.100.1', caps)).toMatchObject({ scope: 'address' })
    second.release()
  })

  it('caps a signed-in person per person, not by the guests\' count of the address', () => {
    const guests = [holdPending('198.51.100.2', caps), holdPending('198.51.100.2', caps)] as ConnectionHold[]
    const alice = [1, 2, 3].map(() => holdConnection({ person: 'u-alice', ip: '198.51.100.2' }, caps))
    expect(alice.every(hold => hold instanceof ConnectionHold)).toBe(true)
    expect(holdConnection({ person: 'u-alice', ip: '198.51.100.3' }, caps)).toMatchObject({ scope: 'person', limit: 'connections' })
    // The address's signed-in ceiling (2 × 2) is separate from the guests' and from Alice's.
    expect(holdConnection({ person: 'u-bob', ip: '198.51.100.2' }, caps)).toBeInstanceOf(ConnectionHold)
    expect(holdConnection({ person: 'u-carol', ip: '198.51.100.2' }, caps)).toMatchObject({ scope: 'address' })
    for (const hold of [...guests, ...alice]) (hold as ConnectionHold).release()
  })
})
