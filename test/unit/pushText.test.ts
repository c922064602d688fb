/**
 * What Web Push accepts and says (docs/PROTOCOL.md, "Notifications"): a subscription's endpoint and
 * keys, a notification's title for one message or a batch, and texts cut by characters, not bytes.
 */
import { createECDH, randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { batchTitle, shorten } from '../../src/runtime/server/push/pushService'
import { endpointProblem, parseSubscription } from '../../src/runtime/server/push/pushSubscription'
import type { ChatMessageFrame } from '../../src/runtime/shared/protocol'

const ecdh = createECDH('prime256v1')
ecdh.generateKeys()
const keys = { p256dh: ecdh.getPublicKey().toString('base64url'), auth: randomBytes(16).toString('base64url') }
const frame = (user: string): ChatMessageFrame => ({ type: 'message', room: 'r', id: 1, user, message: 'hi', ts: 0 })

describe('push subscriptions', () => {
  it('takes a browser\'s PushSubscription JSON, with or without base64 padding', () => {
    const endpoint = 'https://fcm.googleapis.com/fcm/send/abc:def'
    expect(parseSubscription({ endpoint, keys, expirationTime: null }, false)).toEqual({ endpoint, ...keys })
    expect(parseSubscription({ endpoint, keys: { p256dh: `${keys.p256dh}=`, auth: `${keys.auth}==` } }, false)).toMatchObject({ endpoint })
  })

  it('refuses endpoints that are no push service\'s, and keys of the wrong size or shape', () => {
    expect(endpointProblem('http://push.example.test/x', false)).toMatch(/https/)
    expect(endpointProblem('http://push.example.test/x', true)).toMatch(/https/)
    expect(endpointProblem('http://127.0.0.1:9/x', true)).toBeUndefined()
    expect(endpointProblem('https://192.168.1.1/x', false)).toMatch(/host name/)
    expect(endpointProblem('https://localhost./x', false)).toMatch(/host name/)
    expect(endpointProblem(42, false)).toMatch(/URL/)
    expect(endpointProblem('not a url', false)).toMatch(/not a URL/)
    // A compressed point (33 bytes) or one not starting with 4 is no key a browser sends.
    const compressed = Buffer.concat([Buffer.from([2]), randomBytes(32)]).toString('base64url')
    expect(parseSubscription({ endpoint: 'https://push.example.test/x', keys: { ...keys, p256dh: compressed } }, false)).toMatch(/p256dh/)
    const notFour = Buffer.concat([Buffer.from([5]), randomBytes(64)]).toString('base64url')
    expect(parseSubscription({ endpoint: 'https://push.example.test/x', keys: { ...keys, p256dh: notFour } }, false)).toMatch(/p256dh/)
    expect(parseSubscription({ endpoint: 'https://push.example.test/x', keys: { ...keys, auth: 'a+b/c' } }, false)).toMatch(/auth/)
    expect(parseSubscription(null, false)).toMatch(/JSON object/)
  })
})

describe('notification texts', () => {
  it('cut to a number of characters, whitespace folded, an emoji never split', () => {
    expect(shorten('short', 10)).toBe('short')
    expect(shorten('a\n\n b   c', 10)).toBe('a b c')
    expect(shorten('🌸'.repeat(10), 5)).toBe('🌸🌸🌸🌸…')
    expect(shorten('x'.repeat(11), 10)).toBe(`${'x'.repeat(9)}…`)
  })

  it('one message: its sender; several: how many and from whom', () => {
    expect(batchTitle([frame('Ann')], 1)).toBe('Ann')
    expect(batchTitle([frame('Ann'), frame('Ann'), frame('Ann')], 3)).toBe('3 new messages from Ann')
    expect(batchTitle([frame('Ann'), frame('Ben')], 2)).toBe('2 new messages from Ann and Ben')
    expect(batchTitle([frame('Ann'), frame('Ben'), frame('Cat')], 60)).toBe('60 new messages from Ann, Ben and others')
  })
})
