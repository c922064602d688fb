import { describe, expect, it } from 'vitest'
import { createRoomPresence } from '../../src/runtime/server/utils/presence'

describe('room presence', () => {
  it('knows the signed-in names online as users come and go and announcements expire', () => {
    const presence = createRoomPresence('r')
    const alice = { id: 'a', name: 'Alice' }
    presence.connect(alice)
    presence.connect({ id: 'guest:x', name: 'Guest', guest: true })
    expect(presence.signedInNames()).toEqual(['Alice'])
    presence.connect({ id: 'b', name: 'Bob' })
    expect(presence.signedInNames()).toEqual(['Alice', 'Bob'])
    presence.heardFrom('other', [{ id: 'c', name: 'Carol' }], Date.now() + 50)
    expect(presence.signedInNames()).toEqual(['Alice', 'Bob', 'Carol'])
    presence.connect(alice)
    presence.disconnect(alice)
    expect(presence.signedInNames()).toEqual(['Alice', 'Bob', 'Carol'])
    presence.disconnect(alice)
    expect(presence.signedInNames()).toEqual(['Bob', 'Carol'])
    // Carol's instance went quiet: her announcement expires without any other change here.
    presence.heardFrom('other', [{ id: 'c', name: 'Carol' }], Date.now() - 1)
    expect(presence.signedInNames()).toEqual(['Bob'])
  })

  it('drops an announcement once it expires, with nothing else changing', async () => {
    const presence = createRoomPresence('r')
    presence.heardFrom('other', [{ id: 'c', name: 'Carol' }], Date.now() + 20)
    expect(presence.signedInNames()).toEqual(['Carol'])
    await new Promise(resolve => setTimeout(resolve, 40))
    expect(presence.signedInNames()).toEqual([])
  })
})
