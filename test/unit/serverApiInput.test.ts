/**
 * The checks of the server API's arguments (src/runtime/server/utils/serverApiInput.ts,
 * docs/PROTOCOL.md "Messages from the server side"): each names the argument it refuses; what a
 * call may take passes. test/e2e/serverApi.test.ts runs them through `useChatServer()`.
 */
import { describe, expect, it } from 'vitest'
import { afterProblem, authorProblem, idProblem, limitProblem, optionsProblem, roleProblem, roomProblem, searcherProblem, searchRoomsProblem, sendOptionsProblem, shownAuthor, textProblem, untilProblem, userIdProblem } from '../../src/runtime/server/utils/serverApiInput'

describe('server API arguments', () => {
  it('rooms, user ids, roles and mute ends', () => {
    expect(roomProblem('lobby')).toBeUndefined()
    for (const room of ['', 'bad room', 'x'.repeat(65), 5, undefined]) expect(roomProblem(room), String(room)).toContain('`room`')
    expect(userIdProblem('guest:abc')).toBeUndefined()
    for (const id of ['', 'a\u0000b', 'x'.repeat(257), 5, null]) expect(userIdProblem(id), String(id)).toContain('`userId`')
    for (const role of ['owner', 'moderator', 'member']) expect(roleProblem(role)).toBeUndefined()
    for (const role of ['god', 'toString', '__proto__', 1, undefined]) expect(roleProblem(role), String(role)).toContain('`role`')
    for (const until of [undefined, 0, Date.now()]) expect(untilProblem(until)).toBeUndefined()
    for (const until of ['soon', -1, 1.5, Number.NaN, 1e300]) expect(untilProblem(until), String(until)).toContain('`until`')
  })

  it('ids, page sizes and `after`', () => {
    expect(idProblem(undefined, 'thread')).toBeUndefined()
    expect(idProblem(undefined, 'id', { optional: false })).toContain('`id`')
    expect(idProblem(0, 'id', { min: 0 })).toBeUndefined()
    for (const id of [0, -5, 1.5, 1e300, '3']) expect(idProblem(id, 'replyTo'), String(id)).toContain('`replyTo`')
    for (const limit of [undefined, 1, 1e6]) expect(limitProblem(limit)).toBeUndefined()
    for (const limit of [0, -1, 2.5, Number.NaN, Infinity, '10']) expect(limitProblem(limit), String(limit)).toContain('`limit`')
    expect(afterProblem('u-1', 256)).toBeUndefined()
    expect(afterProblem(5, 256)).toContain('`after`')
    expect(afterProblem('x'.repeat(65), 64)).toContain('`after`')
  })

  it('who server code writes as: a signed-in user\'s or a bot\'s id, or `server`, with a name; never a guest', () => {
    for (const user of [{ id: 'bot', name: 'Bot' }, { id: 'server', name: 'server' }]) expect(authorProblem(user)).toBeUndefined()
    for (const user of [null, 'bot', { id: 5, name: {} }, { id: '', name: '' }, { id: 'guest:abc', name: 'G' }, { id: 'bot', name: '' }, { id: 'bot', name: 'a\u0000' }, { id: 'bot', name: 'x'.repeat(201) }, { id: 'bot', name: 'B', guest: true }]) {
      expect(authorProblem(user), JSON.stringify(user)).toMatch(/^`user` must be/)
    }
    expect(authorProblem(undefined, 'as')).toMatch(/^`as` must be/)
  })

  it('a name server code gives is cleaned as a display name: nothing visible left is a problem, the rest is shown cleaned', () => {
    for (const name of ['\u200B', '\u202E\u2066', ' \u3164 ', '\u200D\u200C']) expect(authorProblem({ id: 'bot', name }), JSON.stringify(name)).toMatch(/nothing visible/)
    expect(shownAuthor({ id: 'bot', name: '\u202EDeploy\u200B  bot 🏳\uFE0F\u200D🌈' })).toEqual({ id: 'bot', name: 'Deploy bot 🏳\uFE0F\u200D🌈' })
    expect(shownAuthor({ id: 'bot', name: 'n'.repeat(40) }).name).toBe('n'.repeat(32))
  })

  it('whom server code searches as: anyone, a guest\'s id with `guest: true` only', () => {
    expect(searcherProblem({ id: 'u-1', name: 'A' })).toBeUndefined()
    expect(searcherProblem({ id: 'guest:abc', name: 'G', guest: true })).toBeUndefined()
    for (const user of [{ id: 7 }, { id: 'u-1' }, { id: 'guest:abc', name: 'G' }, { id: 'u-1', name: 'A', guest: true }, { id: 'u-1', name: 'A', guest: 'yes' }]) {
      expect(searcherProblem(user), JSON.stringify(user)).toMatch(/^`user` must be/)
    }
    expect(searchRoomsProblem(['a', 'b'])).toBeUndefined()
    for (const rooms of ['abc', ['bad room'], [5], Array.from({ length: 1001 }, (_, index) => `r${index}`)]) expect(searchRoomsProblem(rooms)).toContain('`rooms`')
  })

  it('a message\'s text and options', () => {
    expect(textProblem('')).toBeUndefined()
    expect(textProblem(123)).toContain('`message`')
    expect(optionsProblem(undefined)).toBeUndefined()
    for (const options of [null, 'x', [1]]) expect(optionsProblem(options), String(options)).toContain('`options`')
    expect(sendOptionsProblem({ user: { id: 'bot', name: 'Bot' }, cid: 'c-1', replyTo: 1, thread: 2, alsoInRoom: false, files: [{ name: 'a.png', data: new Uint8Array(1) }] })).toBeUndefined()
    const cases: [Record<string, unknown>, string][] = [
      [{ user: { id: 'guest:abc', name: 'G' } }, '`user`'],
      [{ cid: 'x'.repeat(200) }, '`cid`'],
      [{ cid: 'bad cid' }, '`cid`'],
      [{ replyTo: -1 }, '`replyTo`'],
      [{ thread: 1e300 }, '`thread`'],
      [{ alsoInRoom: 'yes' }, '`alsoInRoom`'],
      [{ files: 'a.png' }, '`files`'],
      [{ files: [{ name: 'a.png', data: 'bytes' }] }, '`files`'],
    ]
    for (const [options, word] of cases) expect(sendOptionsProblem(options), JSON.stringify(options)).toContain(word)
  })
})
