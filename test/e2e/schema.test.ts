/**
 * Typed payloads: the fixture's `poll-*` rooms carry a Valibot schema (registered with
 * `defineChatSchema` in test/fixtures/basic/server/plugins/chatSchemas.ts). A message that is not
 * JSON or not a poll is refused with `bad_request` and never stored; a valid one is stored as the
 * schema's output. Other rooms take any text.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ChatSocket, postMessage } from '../utils/clients'
import { startServer, type TestServer } from '../utils/server'

let server: TestServer
const pollRoom = () => `poll-${randomUUID().slice(0, 8)}`
const http = () => `http://127.0.0.1:${server.port}`
const ws = () => `ws://127.0.0.1:${server.port}`

beforeAll(async () => {
  server = await startServer({ env: { NUXT_CHAT_RATE_LIMIT: 'false' } })
})
afterAll(() => server?.stop())

describe('a room with a schema', () => {
  it('refuses a malformed payload over WebSocket with bad_request and the schema\'s issues, and stores nothing of it', async () => {
    const room = pollRoom()
    const socket = await ChatSocket.open(ws(), { room, name: 'Ann' })
    socket.send({ type: 'message', message: JSON.stringify({ question: 'Lunch?', options: ['pizza'] }), cid: 'bad-1' })
    const refused = await socket.waitFor(frame => frame.type === 'error' && frame.cid === 'bad-1')
    expect(refused).toMatchObject({ code: 'bad_request', message: 'options: At least 2 options' })
    socket.send({ type: 'message', message: 'just text', cid: 'bad-2' })
    expect(await socket.waitFor(frame => frame.type === 'error' && frame.cid === 'bad-2')).toMatchObject({ code: 'bad_request', message: 'Message must be JSON in this room' })

    socket.send({ type: 'message', message: JSON.stringify({ question: 'Lunch?', options: ['pizza', 'soup'] }), cid: 'good-1' })
    const stored = await socket.waitFor(frame => frame.type === 'message' && frame.cid === 'good-1')
    // The schema's output is stored: its default for `multiple` filled in.
    expect(JSON.parse(stored.message as string)).toEqual({ question: 'Lunch?', options: ['pizza', 'soup'], multiple: false })
    await socket.close()

    // A newcomer's replay holds the valid poll only.
    const reader = await ChatSocket.open(ws(), { room, name: 'Ben' })
    await reader.waitFor(frame => frame.type === 'message' && frame.cid === 'good-1')
    expect(reader.messages.map(message => message.cid)).toEqual(['good-1'])
    await reader.close()
  })

  it('refuses a malformed payload over POST with 400 bad_request', async () => {
    const room = pollRoom()
    const post = await postMessage(http(), { message: JSON.stringify({ question: '', options: ['a', 'b', 'c', 'd', 'e', 'f'] }), cid: 'p-1' }, { room, name: 'Cy' })
    expect(post.status).toBe(400)
    expect(post.json).toMatchObject({ type: 'error', code: 'bad_request', cid: 'p-1', message: 'question: Ask something; options: At most 5 options' })
    const good = await postMessage(http(), { message: JSON.stringify({ question: 'Tea?', options: ['yes', 'no'], multiple: true }) }, { room, name: 'Cy' })
    expect(good.status).toBe(200)
    expect(good.json).toMatchObject({ type: 'message', message: '{"question":"Tea?","options":["yes","no"],"multiple":true}' })
  })

  it('leaves rooms without a schema alone', async () => {
    const post = await postMessage(http(), { message: 'plain text is fine here' }, { room: `free-${randomUUID().slice(0, 8)}`, name: 'Di' })
    expect(post.status).toBe(200)
    expect(post.json).toMatchObject({ message: 'plain text is fine here' })
  })
})
