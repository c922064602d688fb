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

  it('counts every connection of a user: only the last to leave takes the user offline', () => {
    const presence = createRoomPresence('r')
    const alice = { id: 'a', name: 'Alice' }
    expect([presence.connect(alice), presence.connect(alice), presence.connect(alice)]).toEqual([true, false, false])
    expect([presence.disconnect(alice), presence.disconnect(alice)]).toEqual([false, false])
    expect(presence.localUsers()).toEqual([alice])
    expect(presence.disconnect(alice)).toBe(true)
    expect(presence.localUsers()).toEqual([])
    expect(presence.disconnect(alice)).toBe(false)
    expect(presence.connect(alice)).toBe(true)
  })

  it('drops an announcement once it expires, with nothing else changing', async () => {
    const presence = createRoomPresence('r')
    presence.heardFrom('other', [{ id: 'c', name: 'Carol' }], Date.now() + 20)
    expect(presence.signedInNames()).toEqual(['Carol'])
    await new Promise(resolve => setTimeout(resolve, 40))
    expect(presence.signedInNames()).toEqual([])
  })
})
