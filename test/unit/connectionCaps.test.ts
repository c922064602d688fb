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
    // Requests not yet identified are counted apart: guests at their cap do not keep a signed-in person out.
    const pending = [holdPending('198.51.100.1', caps), holdPending('198.51.100.1', caps)]
    expect(pending.every(hold => hold instanceof ConnectionHold)).toBe(true)
    expect(holdPending('198.51.100.1', caps)).toMatchObject({ scope: 'address', limit: 'connections' })
    for (const hold of [second, ...pending]) (hold as ConnectionHold).release()
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
