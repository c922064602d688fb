import { describe, expect, it } from 'vitest'
import { parseClientFrameV2 } from '../../src/runtime/shared/protocolV2'
import { applyPresenceDiff, isTimeInRange, isValidCid, isValidRoom, MAX_ID, MAX_TIME, parseClientFrame, parseCursor, parseHistoryRequest, parseReadCommand, presenceDiffFrame } from '../../src/runtime/shared/protocol'

describe('parseClientFrame', () => {
  it('treats raw text as a message and the exact text ping as a ping', () => {
    expect(parseClientFrame('hello')).toEqual({ type: 'message', message: 'hello' })
    expect(parseClientFrame('ping')).toEqual({ type: 'ping' })
    expect(parseClientFrame('shipping')).toEqual({ type: 'message', message: 'shipping' })
  })
  it('reads JSON commands and keeps unknown JSON as text', () => {
    expect(parseClientFrame('{"type":"message","message":"hi","cid":"c-1"}')).toEqual({ type: 'message', message: 'hi', cid: 'c-1' })
    expect(parseClientFrame('{"type":"ping"}')).toEqual({ type: 'ping' })
    expect(parseClientFrame('{"type":"typing"}')).toEqual({ type: 'typing' })
    expect(parseClientFrame('{"a":1}')).toEqual({ type: 'message', message: '{"a":1}' })
    expect(parseClientFrame('{not json')).toEqual({ type: 'message', message: '{not json' })
  })
  it('refuses commands with wrong field types', () => {
    expect(parseClientFrame('{"type":"message","message":42}').type).toBe('invalid')
    expect(parseClientFrame('{"type":"message","message":"x","cid":""}').type).toBe('invalid')
    expect(parseClientFrame(`{"type":"message","message":"x","cid":"${'c'.repeat(65)}"}`).type).toBe('invalid')
  })
})

describe('validation', () => {
  it('accepts room names of 1-64 allowed characters only', () => {
    expect(isValidRoom('chat')).toBe(true)
    expect(isValidRoom('a.b:c_d-e')).toBe(true)
    expect(isValidRoom('')).toBe(false)
    expect(isValidRoom('x'.repeat(65))).toBe(false)
    expect(isValidRoom('no spaces')).toBe(false)
    expect(isValidRoom('<script>')).toBe(false)
  })
  it('accepts cids of 1-64 characters from [A-Za-z0-9._:-] only', () => {
    expect(isValidCid('c-1')).toBe(true)
    expect(isValidCid('Ab9._:-')).toBe(true)
    expect(isValidCid('x'.repeat(64))).toBe(true)
    for (const cid of ['', 'x'.repeat(65), '\uD800', '\uDC00', 'a b', 'c\u00001', '\u00E9', 42, null]) expect(isValidCid(cid), JSON.stringify(cid)).toBe(false)
  })
  it('parses cursors, ignoring malformed ones', () => {
    expect(parseCursor('42')).toBe(42)
    expect(parseCursor('-1')).toBeUndefined()
    expect(parseCursor('1e3')).toBeUndefined()
    expect(parseCursor('9'.repeat(20))).toBeUndefined()
    expect(parseCursor(null)).toBeUndefined()
  })
})

describe('presence diffs', () => {
  it('applies leaves, then joins, by id; a renamed user is replaced', () => {
    const a = { id: 'a', name: 'Ann' }
    const b = { id: 'b', name: 'Bo' }
    const c = { id: 'c', name: 'Cy' }
    const diff = presenceDiffFrame('r', [c, { id: 'a', name: 'Anna' }], [b, a], 2)
    expect(diff).toEqual({ type: 'presence_diff', room: 'r', joins: [c, { id: 'a', name: 'Anna' }], leaves: [b, a], count: 2, user: 'server', message: '2 online' })
    expect(applyPresenceDiff([a, b], diff)).toEqual([c, { id: 'a', name: 'Anna' }])
    // A leave of someone unknown and a join of someone known change nothing else.
    expect(applyPresenceDiff([a], { joins: [a], leaves: [b] })).toEqual([a])
  })
})

describe('ids and cursors: one bound over WebSocket and HTTP (issue 22, finding 11)', () => {
  it('accepts ids up to 2^53 - 1 as JSON numbers and as decimal text alike, and nothing past it', () => {
    expect(MAX_ID).toBe(9007199254740991)
    for (const text of ['9007199254740991', '0000000000000007', '1']) expect(parseCursor(text), text).toBe(Number(text))
    for (const text of ['9007199254740992', '99999999999999999', '00000000000000001', '1e3', '-1', ' 1', '']) expect(parseCursor(text), text).toBeUndefined()
    expect(parseCursor(MAX_ID)).toBe(MAX_ID)
    expect(parseCursor(MAX_ID + 1)).toBeUndefined()
    // The same `before` whether it came as a command field (number or text) or a query parameter.
    for (const before of [MAX_ID, '9007199254740991']) expect(parseHistoryRequest(before, undefined)).toEqual({ before: MAX_ID, limit: 50 })
    expect(parseHistoryRequest(undefined, undefined)).toEqual({ before: MAX_ID, limit: 50 })
    for (const before of [MAX_ID + 1, '9007199254740992', 0, '0', 1.5]) expect(parseHistoryRequest(before, undefined), String(before)).toBe('`before` must be an integer from 1 to 9007199254740991')
    expect(parseReadCommand({ id: MAX_ID })).toEqual({ type: 'read', id: MAX_ID })
    expect(parseReadCommand({ id: MAX_ID + 1 })).toBe('`id` must be a message id')
    expect(parseClientFrame(JSON.stringify({ type: 'delete', target: MAX_ID + 1 }))).toMatchObject({ type: 'invalid' })
  })
})

describe('times: integers up to the latest Date (docs/PROTOCOL.md, "Times")', () => {
  const refused = [MAX_TIME + 1, MAX_ID, 1e300, -1, 1.5, '5', null, true]
  it('isTimeInRange takes 0 to 8.64e15 ms and nothing else', () => {
    expect(MAX_TIME).toBe(8_640_000_000_000_000)
    for (const time of [0, 1, Date.now(), MAX_TIME]) expect(isTimeInRange(time), String(time)).toBe(true)
    for (const time of [...refused, Number.NaN, Infinity, -Infinity, undefined]) expect(isTimeInRange(time), String(time)).toBe(false)
  })
  it('a mute\'s `until` past the latest Date (or not an integer from 0) is invalid on both versions; the latest is a mute', () => {
    for (const until of refused) {
      const v1 = parseClientFrame(JSON.stringify({ type: 'mute', user: 'bob', until }))
      expect(v1, JSON.stringify(until)).toMatchObject({ type: 'invalid', reason: expect.stringContaining('8640000000000000') })
      const v2 = parseClientFrameV2(JSON.stringify({ type: 'mute', room: 'lobby', user: 'bob', until, ref: 'r1' }))
      expect(v2, JSON.stringify(until)).toMatchObject({ type: 'invalid', room: 'lobby', ref: 'r1', reason: expect.stringContaining('until') })
    }
    // JSON's 1e400 is Infinity.
    expect(parseClientFrame('{"type":"mute","user":"bob","until":1e400}')).toMatchObject({ type: 'invalid' })
    expect(parseClientFrame(`{"type":"mute","user":"bob","until":${MAX_TIME}}`)).toEqual({ type: 'mute', user: 'bob', until: MAX_TIME })
    expect(parseClientFrame('{"type":"mute","user":"bob","until":0}')).toEqual({ type: 'mute', user: 'bob', until: 0 })
  })
})
