import { describe, expect, it } from 'vitest'
import { createMentionResolver, createNameIndex, findMentions } from '../../src/runtime/server/utils/mentions'
import { MAX_MENTIONS } from '../../src/runtime/server/utils/roomLog'

const index = createNameIndex([
  { uid: 'u-ann', name: 'Ann' },
  { uid: 'u-annlee', name: 'Ann Lee' },
  { uid: 'u-bob', name: 'bob' },
  { uid: 'u-zoe', name: 'Zoë' },
  { uid: 'u-jp', name: '山田' },
  { uid: 'u-emoji', name: 'Kim 🌸' },
  { uid: 'u-bob2', name: 'Bob' },
  { uid: 'u-noname', name: '' },
])
const found = (text: string, sender = 'u-sender', mayMentionAll = false) => findMentions(text, index, sender, mayMentionAll)

describe('findMentions', () => {
  it('finds a name at the start, after spaces and punctuation, case-insensitively', () => {
    expect(found('@ann hi').uids).toEqual(['u-ann'])
    expect(found('hi (@ANN), how are you').uids).toEqual(['u-ann'])
    expect(found('hello @Ann').uids).toEqual(['u-ann'])
  })

  it('takes the longest member name after the @ (names with spaces)', () => {
    expect(found('@Ann Lee please').uids).toEqual(['u-annlee'])
    expect(found('@Ann Leeds').uids).toEqual(['u-ann'])
  })

  it('needs the name to end a word: @Alicex is not @Alice, @Ann\'s is', () => {
    expect(found('@Annabel hi').uids).toEqual([])
    expect(found('@Ann\'s idea').uids).toEqual(['u-ann'])
    expect(found('@Ann_x').uids).toEqual([])
  })

  it('does not take e-mail addresses or @ inside words', () => {
    expect(found('mail ann@bob.com or x.@bob').uids).toEqual([])
    expect(found('a@@bob').uids).toEqual([])
  })

  it('matches unicode names (diacritics, CJK, emoji), and every member holding a name', () => {
    expect(found('@zoë and @山田 and @kim 🌸!').uids).toEqual(['u-zoe', 'u-jp', 'u-emoji'])
    expect(found('@Zoey').uids).toEqual([])
    expect(found('@BOB').uids.toSorted()).toEqual(['u-bob', 'u-bob2'])
  })

  it('never names the sender, and each member once', () => {
    expect(found('@Ann @ann @Ann', 'u-sender').uids).toEqual(['u-ann'])
    expect(found('@Ann and @bob', 'u-ann').uids.toSorted()).toEqual(['u-bob', 'u-bob2'])
  })

  it('@room and @here mention everyone only when the sender may; else they stay text', () => {
    expect(found('@room deploy at 5', 'u-x', true)).toEqual({ uids: [], all: 'room' })
    expect(found('@HERE anyone?', 'u-x', true)).toEqual({ uids: [], all: 'here' })
    expect(found('@here and @room', 'u-x', true).all).toBe('room')
    expect(found('@room deploy', 'u-x', false)).toEqual({ uids: [] })
    expect(found('@roommate', 'u-x', true)).toEqual({ uids: [] })
  })

  it('stops at MAX_MENTIONS members', () => {
    const many = createNameIndex(Array.from({ length: 80 }, (_, i) => ({ uid: `u${i}`, name: `user${i}` })))
    const text = Array.from({ length: 80 }, (_, i) => `@user${i}`).join(' ')
    expect(findMentions(text, many, 'x', false).uids).toHaveLength(MAX_MENTIONS)
  })
})

describe('createMentionResolver', () => {
  it('reads a room\'s names once, answers at once from then on, and reads again after forgetRoom / nameChanged', async () => {
    let reads = 0
    let names = [{ uid: 'u1', name: 'Ann' }, { uid: 'u2', name: '' }]
    const resolver = createMentionResolver({ store: { memberNames: async () => (reads++, names) } })
    expect(resolver.resolve('r', 'no at sign', 'x', false)).toEqual({ uids: [] })
    expect(reads).toBe(0)
    expect(await resolver.resolve('r', '@Ann', 'x', false)).toEqual({ uids: ['u1'] })
    expect(resolver.resolve('r', '@ann', 'x', false)).toEqual({ uids: ['u1'] })
    expect(reads).toBe(1)
    names = [{ uid: 'u1', name: 'Ann' }, { uid: 'u2', name: 'Bea' }]
    // The same name again (a user's first join on another instance): nothing to read.
    resolver.nameChanged('u1', 'ann')
    expect(resolver.resolve('r', '@Ann', 'x', false)).toEqual({ uids: ['u1'] })
    expect(reads).toBe(1)
    resolver.nameChanged('u2', 'Bea')
    expect(await resolver.resolve('r', '@Bea', 'x', false)).toEqual({ uids: ['u2'] })
    expect(reads).toBe(2)
    names = [{ uid: 'u1', name: 'Ann' }]
    resolver.forgetRoom('r')
    expect(await resolver.resolve('r', '@Bea', 'x', false)).toEqual({ uids: [] })
    expect(reads).toBe(3)
  })

  it('keeps at most maxRooms rooms and maxNames names, least recently used out', async () => {
    const resolver = createMentionResolver({ store: { memberNames: async room => [{ uid: `${room}-a`, name: 'a' }, { uid: `${room}-b`, name: 'b' }] }, maxRooms: 3, maxNames: 100 })
    for (const room of ['r1', 'r2', 'r3', 'r4']) await resolver.resolve(room, '@a', 'x', false)
    expect(resolver.size()).toEqual({ rooms: 3, names: 6 })
    const small = createMentionResolver({ store: { memberNames: async room => [{ uid: `${room}-a`, name: 'a' }, { uid: `${room}-b`, name: 'b' }] }, maxNames: 4 })
    for (const room of ['r1', 'r2', 'r3']) await small.resolve(room, '@a', 'x', false)
    expect(small.size()).toEqual({ rooms: 2, names: 4 })
  })

  it('keeps the rooms of a busy server (1,500 active rooms of 20): each room\'s names read once, not once per message', async () => {
    let reads = 0
    const resolver = createMentionResolver({ store: { memberNames: async room => (reads++, Array.from({ length: 20 }, (_, i) => ({ uid: `${room}-${i}`, name: `n${i}` }))) } })
    for (let round = 0; round < 3; round++) {
      for (let room = 0; room < 1500; room++) await resolver.resolve(`room-${room}`, '@n1 hi', 'x', false)
    }
    expect(reads).toBe(1500)
  })

  it('reads again once the index is older than ttl', async () => {
    let time = 0
    let reads = 0
    const resolver = createMentionResolver({ store: { memberNames: async () => (reads++, [{ uid: 'u1', name: 'Ann' }]) }, ttl: 1000, now: () => time })
    await resolver.resolve('r', '@Ann', 'x', false)
    time = 999
    resolver.resolve('r', '@Ann', 'x', false)
    expect(reads).toBe(1)
    time = 1000
    await resolver.resolve('r', '@Ann', 'x', false)
    expect(reads).toBe(2)
  })
})
