import { describe, expect, it } from 'vitest'
import { parseClientFrameV2 } from '../../src/runtime/shared/protocolV2'

describe('parseClientFrameV2 (docs/PROTOCOL.md, "Commands, version 2")', () => {
  it('reads room commands with their room and ref', () => {
    expect(parseClientFrameV2('{"type":"join","room":"a","since":4,"ref":"r1"}')).toEqual({ type: 'join', room: 'a', since: 4, ref: 'r1' })
    expect(parseClientFrameV2('{"type":"leave","room":"a"}')).toEqual({ type: 'leave', room: 'a' })
    expect(parseClientFrameV2('{"type":"message","room":"a","message":"hi","cid":"c1","ref":"m"}')).toEqual({ type: 'message', room: 'a', message: 'hi', cid: 'c1', ref: 'm' })
    expect(parseClientFrameV2('{"type":"reaction","room":"a","target":3,"emoji":"👍"}')).toEqual({ type: 'reaction', room: 'a', target: 3, emoji: '👍' })
    expect(parseClientFrameV2('{"type":"read","room":"a","id":7}')).toEqual({ type: 'read', room: 'a', id: 7 })
    expect(parseClientFrameV2('{"type":"history","room":"a","limit":10}')).toMatchObject({ type: 'history', room: 'a', limit: 10 })
    expect(parseClientFrameV2('{"type":"rooms","ref":"l"}')).toEqual({ type: 'rooms', ref: 'l' })
    expect(parseClientFrameV2('{"type":"ping"}')).toEqual({ type: 'ping' })
  })

  it('says what is wrong, naming the room, ref and cid it could read', () => {
    expect(parseClientFrameV2('hello')).toMatchObject({ type: 'invalid', reason: expect.stringMatching(/JSON commands only/) })
    expect(parseClientFrameV2('ping')).toMatchObject({ type: 'invalid' })
    expect(parseClientFrameV2('[1]')).toMatchObject({ type: 'invalid', reason: 'A command must be a JSON object' })
    expect(parseClientFrameV2('null')).toMatchObject({ type: 'invalid', reason: 'A command must be a JSON object' })
    expect(parseClientFrameV2('{"type":"shout","ref":"x"}')).toEqual({ type: 'invalid', reason: 'Unknown command `shout`', ref: 'x' })
    // A type no string can be made of (its toString is no function) is named by its kind, not converted.
    expect(parseClientFrameV2('{"type":{"toString":"x"}}')).toEqual({ type: 'invalid', reason: 'Unknown command `object`' })
    expect(parseClientFrameV2('{"type":7}')).toEqual({ type: 'invalid', reason: 'Unknown command `number`' })
    expect(parseClientFrameV2('{"type":"message","message":"hi","cid":"c"}')).toMatchObject({ type: 'invalid', reason: expect.stringMatching(/`room`/), cid: 'c' })
    expect(parseClientFrameV2('{"type":"join","room":"a","since":-1}')).toMatchObject({ type: 'invalid', room: 'a', reason: expect.stringMatching(/`since`/) })
    expect(parseClientFrameV2('{"type":"edit","room":"a","target":0,"message":"x"}')).toMatchObject({ type: 'invalid', room: 'a' })
    expect(parseClientFrameV2('{"type":"ping","ref":"bad ref"}')).toMatchObject({ type: 'invalid', reason: expect.stringMatching(/`ref`/) })
    // An unknown type is cut short in the answer.
    expect((parseClientFrameV2(JSON.stringify({ type: 'x'.repeat(1000) })) as { reason: string }).reason.length).toBeLessThan(60)
  })
})
