import { describe, expect, it } from 'vitest'
import { applyPresenceDiff, isValidRoom, parseClientFrame, parseCursor, presenceDiffFrame, sanitizeName } from '../../src/runtime/shared/protocol'

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
  it('sanitises names: trimmed, printable, at most 32 characters', () => {
    expect(sanitizeName('  alice ')).toBe('alice')
    expect(sanitizeName('a\u0000b\u001Bc\u202E')).toBe('abc')
    expect(sanitizeName('\uD800x')).toBe('x')
    expect(sanitizeName('   ')).toBeUndefined()
    expect(sanitizeName('n'.repeat(40))).toHaveLength(32)
    expect(sanitizeName('😀'.repeat(40))).toBe('😀'.repeat(32))
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
