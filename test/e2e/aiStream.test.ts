/**
 * Streaming messages (docs/PROTOCOL.md, "Streaming messages"): an AI member's reply written by a
 * deterministic source (test/fixtures/basic/server/routes/_test/stream.post.ts), on one SQLite
 * instance and on two PostgreSQL instances over Redis.
 */
import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { applyDelta, type ChatServerFrame } from '../../src/runtime/shared/protocol'
import { sleep } from '../utils/chaos'
import { ChatSocket, ChatSocketV2, ChatStream, until, untilOnOneBus } from '../utils/clients'
import { callServer, serverPairs, startServer, type ServerPair, type TestServer } from '../utils/server'

const CHECKPOINT = 200
const env = {
  NUXT_CHAT_RATE_LIMIT: 'false',
  NUXT_CHAT_PRESENCE_INTERVAL: '500',
  NUXT_CHAT_PRESENCE_WAIT: '3000',
  NUXT_CHAT_STREAMS_CHECKPOINT: String(CHECKPOINT),
  NUXT_CHAT_STREAMS_PER_ROOM: '2',
  NUXT_CHAT_STREAMS_MAX_LENGTH: '500',
  NUXT_CHAT_STREAMS_CHUNKS_PER_SECOND: '100',
}
const newRoom = (prefix = 'stream') => `${prefix}-${randomUUID().slice(0, 8)}`
const httpBase = (server: TestServer) => server.url('').replace(/\/$/, '')
const ALICE = { cookie: 'session=alice-token' }
const BOB = { cookie: 'session=bob-token' }
type Frame = ChatServerFrame & Record<string, unknown>

interface StartAnswer { id: number, run: string, frame: Record<string, unknown> }

async function startStream(server: TestServer, body: Record<string, unknown>): Promise<{ status: number, body: StartAnswer & { data?: { code?: string } } }> {
  const response = await fetch(server.url('/_test/stream'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: response.status, body: await response.json() as StartAnswer }
}

async function runOf(server: TestServer, run: string, stop = false): Promise<{ aborted: boolean, closed: boolean, yielded: number, result?: { text: string, incomplete?: string } }> {
  return await (await fetch(server.url(`/_test/stream-run?run=${run}${stop ? '&stop=1' : ''}`))).json()
}

/**
 * What a client holding these frames (in order) shows of message `id`: its text as the message log
 * grows it (deltas applied by offset), the final text, and what the deltas cost.
 */
function follow(frames: Frame[], id: number) {
  let text: string | undefined
  let streaming = false
  let final: Frame | undefined
  let gaps = 0
  let unknown = 0
  let deltaChars = 0
  let deltas = 0
  const grew: number[] = []
  for (const frame of frames) {
    if (frame.type === 'message' && frame.id === id) {
      // A replayed state older than what is held (a reconnect) keeps the longer text.
      if (text === undefined || (frame.message as string).length >= text.length || !frame.streaming) text = frame.message as string
      streaming = frame.streaming === true
    }
    else if (frame.type === 'delta' && frame.id === id) {
      deltas++
      deltaChars += (frame.text as string).length
      if (text === undefined || !streaming) {
        unknown++
        continue
      }
      const next = applyDelta(text, frame as never)
      if (next === undefined) gaps++
      else text = next
      grew.push(text.length)
    }
    else if (frame.type === 'edit' && frame.target === id) {
      final = frame
      text = frame.message as string
      streaming = false
    }
  }
  return { text, final, gaps, unknown, deltaChars, deltas, grew }
}

const ends = (id: number) => (frame: Frame) => frame.type === 'edit' && frame.target === id && frame.ended === true

describe.each(serverPairs('nuxt_chat_stream', env))('streaming messages, %s', (name, open) => {
  let pair: ServerPair
  let a: TestServer
  let b: TestServer
  const opened: { close: () => unknown }[] = []
  const track = <T extends { close: () => unknown }>(reader: T) => {
    opened.push(reader)
    return reader
  }

  beforeAll(async () => {
    pair = await open()
    ;[a, b] = pair.servers
  })

  afterAll(async () => {
    for (const reader of opened) await reader.close()
    await pair?.stop()
  })

  it('grows one message by deltas on both instances and stores it once with the same final text', async () => {
    const room = newRoom()
    const onA = track(await ChatSocket.open(a.wsUrl(''), { room, name: 'watcher-a', deltas: 1 }))
    const onB = track(await ChatStream.open(httpBase(b), { room, name: 'watcher-b', deltas: 1 }))
    // The seed page: version 1 without `?deltas=1`, showing every frame's user and message.
    const seed = track(await ChatSocket.open(b.wsUrl(''), { room, name: 'seed' }))
    await onA.waitFor(frame => frame.type === 'presence', 'presence')
    await onB.waitFor(frame => frame.type === 'presence', 'presence')
    const chunks = ['Hello', ', ', 'shared ', 'room', '!']
    const started = await startStream(a, { room, chunks, delay: 30 })
    expect(started.status).toBe(200)
    const { id } = started.body
    expect(started.body.frame).toMatchObject({ type: 'message', id, message: '', streaming: true, user: 'Assistant', uid: 'bot-assistant' })
    for (const reader of [onA, onB]) await reader.waitFor(ends(id), 'the final edit', 10_000)
    for (const reader of [onA, onB]) {
      const seen = follow(reader.frames as Frame[], id)
      expect(reader.frames.find(frame => frame.type === 'message' && frame.id === id)).toMatchObject({ streaming: true, message: '' })
      expect(seen.text).toBe('Hello, shared room!')
      expect(seen.final).toMatchObject({ type: 'edit', target: id, message: 'Hello, shared room!', ended: true })
      expect(seen.final!.incomplete).toBeUndefined()
      // Deltas, not the whole text each time: every character once, in several deltas, none lost.
      expect(seen.deltaChars).toBe('Hello, shared room!'.length)
      expect(seen.deltas).toBeGreaterThan(1)
      expect(seen.gaps + seen.unknown).toBe(0)
      expect(seen.grew).toEqual([...seen.grew].sort((x, y) => x - y))
      // The author shows as typing while it writes.
      expect(reader.frames.some(frame => frame.type === 'typing' && frame.uid === 'bot-assistant')).toBe(true)
    }
    // The seed page gets no deltas (each would be a line of its own): the message, then its final text as the edit.
    await seed.waitFor(ends(id), 'the final edit on the seed page', 10_000)
    expect(seed.frames.filter(frame => frame.type === 'delta')).toEqual([])
    expect(seed.frames.find(frame => frame.type === 'edit' && frame.target === id)).toMatchObject({ message: 'Hello, shared room!', ended: true })
    const history = (await callServer<Frame[]>(b, { call: 'history', room })).body
    expect(history).toHaveLength(1)
    expect(history[0]).toMatchObject({ id, message: 'Hello, shared room!' })
    expect(history[0]!.streaming).toBeUndefined()
    // A stream's final text is no one's edit.
    expect(history[0]!.edited).toBeUndefined()
    expect(history[0]!.incomplete).toBeUndefined()
    expect((await runOf(a, started.body.run)).result).toMatchObject({ text: 'Hello, shared room!' })
  })

  it('reads a ReadableStream and an AI SDK streamText result (MockLanguageModelV3) the same way', async () => {
    const room = newRoom()
    const watcher = track(await ChatSocket.open(a.wsUrl(''), { room, name: 'watcher', deltas: 1 }))
    await watcher.waitFor(frame => frame.type === 'presence', 'presence')
    for (const mode of ['readable', 'ai'] as const) {
      const started = await startStream(b, { room, chunks: ['The ', 'answer ', 'is ', '42.'], delay: 10, mode })
      expect(started.status).toBe(200)
      await watcher.waitFor(ends(started.body.id), `the end of the ${mode} stream`)
      const seen = follow(watcher.frames as Frame[], started.body.id)
      expect(seen.text).toBe('The answer is 42.')
      expect(seen.final!.incomplete).toBeUndefined()
    }
    // A source that throws: stored with its text so far, incomplete as `error`.
    const failing = await startStream(a, { room, chunks: ['Half ', 'an answer'], delay: 10, mode: 'fail' })
    expect(await watcher.waitFor(ends(failing.body.id), 'the failed end')).toMatchObject({ message: 'Half an answer', incomplete: 'error' })
    // In a thread: every frame of it carries the thread, and the parent counts it.
    const parent = (await callServer<Frame>(a, { call: 'send', room, message: 'A question for the thread' })).body
    const threaded = await startStream(b, { room, chunks: ['In ', 'the thread'], delay: 10, thread: parent.id })
    await watcher.waitFor(ends(threaded.body.id), 'the thread reply\'s end')
    expect(watcher.frames.find(frame => frame.type === 'message' && frame.id === threaded.body.id)).toMatchObject({ thread: parent.id, streaming: true })
    const thread = (await callServer<Frame[]>(b, { call: 'history', room, thread: parent.id })).body
    expect(thread).toEqual([expect.objectContaining({ id: threaded.body.id, message: 'In the thread', thread: parent.id })])
    expect((await startStream(b, { room, chunks: ['x'], thread: threaded.body.id })).status).toBe(400)
  })

  // Several instances only: a third one joins the deployment mid-stream.
  if (name !== 'SQLite (one instance)') it('an instance that comes up mid-stream asks the owner for the text so far: its members miss nothing', async () => {
    const room = newRoom()
    const chunks = Array.from({ length: 30 }, (_, index) => `c${index} `)
    // 6 s of stream: a server starting on a loaded machine took longer than the 0.9 s it had before, and met a stream already ended.
    const started = await startStream(a, { room, chunks, delay: 200 })
    const { id } = started.body
    // A third instance of the deployment, started while the stream runs.
    const late = await startServer({ output: 'postgresql', env: pair.env })
    try {
      await untilOnOneBus(a, late)
      const watcher = track(await ChatSocket.open(late.wsUrl(''), { room, name: 'late', deltas: 1 }))
      const end = await watcher.waitFor(ends(id), 'the end', 15_000)
      expect(end.message).toBe(chunks.join(''))
      const frames = watcher.frames as Frame[]
      const replayed = frames.find(frame => frame.type === 'message' && frame.id === id)!
      const at = frames.findIndex(frame => frame.type === 'delta' && frame.id === id && frame.offset === 0)
      expect(at).toBeGreaterThanOrEqual(0)
      const seen = follow([replayed, ...frames.slice(at).filter(frame => frame.type !== 'edit')], id)
      expect(seen.gaps + seen.unknown).toBe(0)
      expect(seen.text).toBe(chunks.join(''))
    }
    finally {
      await late.stop('SIGKILL')
    }
  })

  it('a watcher that drops mid-stream and reconnects, and a newcomer, end with exactly the final text', async () => {
    const room = newRoom()
    const steady = track(await ChatSocket.open(b.wsUrl(''), { room, name: 'steady', deltas: 1 }))
    let dropper = await ChatSocket.open(b.wsUrl(''), { room, name: 'dropper', deltas: 1 })
    await dropper.waitFor(frame => frame.type === 'presence', 'presence')
    const chunks = Array.from({ length: 40 }, (_, index) => `w${index} `)
    const started = await startStream(a, { room, chunks, delay: 25 })
    const { id } = started.body
    await until(() => dropper.frames.filter(frame => frame.type === 'delta').length >= 8, 'some deltas', 10_000)
    const before = dropper.frames as Frame[]
    await dropper.close()
    await sleep(200)
    const cursor = Math.max(...before.filter(frame => frame.type === 'message').map(frame => frame.id as number))
    dropper = track(await ChatSocket.open(b.wsUrl(''), { room, name: 'dropper', since: cursor, deltas: 1 }))
    // A newcomer on the other instance, mid-stream, without a cursor: the message in its replay, then the text so far.
    await sleep(150)
    const newcomer = track(await ChatStream.open(httpBase(a), { room, name: 'newcomer', deltas: 1 }))
    for (const reader of [steady, dropper, newcomer]) await reader.waitFor(ends(id), 'the final edit', 15_000)
    const expected = chunks.join('')
    // After a (re)join: one delta from offset 0 with the text so far; from it on every delta continues the text exactly (no gap, no repeat).
    const fromCatchUp = (frames: Frame[]) => {
      const at = frames.findIndex(frame => frame.type === 'delta' && frame.id === id && frame.offset === 0)
      expect(at).toBeGreaterThanOrEqual(0)
      expect(frames.filter(frame => frame.type === 'delta' && frame.id === id && frame.offset === 0)).toHaveLength(1)
      return frames.slice(at)
    }
    const held = follow(before, id).text!
    const again = fromCatchUp(dropper.frames as Frame[])
    const stub = { type: 'message', id, room, message: held, streaming: true } as unknown as Frame
    const reconnected = follow([stub, ...again], id)
    expect(reconnected.text).toBe(expected)
    expect(reconnected.gaps + reconnected.unknown).toBe(0)
    // Grown by deltas only (the final edit left out), the text was already the whole text.
    expect(follow([stub, ...again.filter(frame => frame.type !== 'edit')], id).text).toBe(expected)
    const newcomerFrames = newcomer.frames as Frame[]
    const replayed = newcomerFrames.find(frame => frame.type === 'message' && frame.id === id)!
    expect(replayed.streaming).toBe(true)
    const fresh = follow([replayed, ...fromCatchUp(newcomerFrames)], id)
    expect(fresh.gaps + fresh.unknown).toBe(0)
    expect(follow([replayed, ...fromCatchUp(newcomerFrames).filter(frame => frame.type !== 'edit')], id).text).toBe(expected)
    expect(follow(steady.frames as Frame[], id).deltaChars).toBe(expected.length)
  })

  it('stop: the asker and moderators may, others may not; it reaches the source\'s abort signal on the instance that runs it', async () => {
    const room = newRoom()
    const alice = track(await ChatSocket.open(a.wsUrl(''), { room, deltas: 1 }, { headers: ALICE }))
    const bob = track(await ChatSocket.open(a.wsUrl(''), { room, deltas: 1 }, { headers: BOB }))
    await alice.waitFor(frame => frame.type === 'presence', 'presence')
    alice.send({ type: 'message', message: 'Tell me a long story', cid: 'q-1' })
    const question = await alice.waitFor(frame => frame.type === 'message' && frame.cid === 'q-1', 'the question')
    const started = await startStream(b, { room, chunks: ['Once'], delay: 20, forever: true, replyTo: question.id })
    const { id } = started.body
    await alice.waitFor(frame => frame.type === 'delta' && frame.id === id, 'a delta')
    bob.send({ type: 'stop', id })
    expect(await bob.waitFor(frame => frame.type === 'error', 'refusal')).toMatchObject({ code: 'forbidden' })
    expect((await runOf(b, started.body.run)).aborted).toBe(false)
    alice.send({ type: 'stop', id: question.id })
    expect(await alice.waitFor(frame => frame.type === 'error', 'not a stream')).toMatchObject({ code: 'not_found' })
    alice.send({ type: 'stop', id })
    const end = await bob.waitFor(ends(id), 'the stopped end')
    expect(end).toMatchObject({ incomplete: 'stopped' })
    expect((end.message as string).startsWith('Once 0')).toBe(true)
    await until(async () => (await runOf(b, started.body.run)).closed, 'the source closed')
    expect(await runOf(b, started.body.run)).toMatchObject({ aborted: true, closed: true, result: { incomplete: 'stopped' } })
    const history = (await callServer<Frame[]>(a, { call: 'history', room })).body
    expect(history.find(frame => frame.id === id)).toMatchObject({ incomplete: 'stopped', message: end.message })

    // Over HTTP (the SSE transport's POST), on the instance that does not run it.
    const second = await startStream(a, { room, chunks: ['Again'], delay: 20, forever: true, replyTo: question.id })
    await alice.waitFor(frame => frame.type === 'delta' && frame.id === second.body.id, 'a delta')
    const post = (body: unknown, headers: Record<string, string>) => fetch(`${httpBase(b)}/api/sse?room=${room}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
    expect((await post({ type: 'stop', id: second.body.id }, BOB)).status).toBe(403)
    const stopped = await post({ type: 'stop', id: second.body.id }, ALICE)
    expect(stopped.status).toBe(200)
    expect(await stopped.json()).toEqual({ type: 'stop', room, id: second.body.id })
    expect(await alice.waitFor(ends(second.body.id), 'the end')).toMatchObject({ incomplete: 'stopped' })
    expect((await post({ type: 'stop', id: 'x' }, ALICE)).status).toBe(400)
    await until(async () => (await runOf(a, second.body.run)).aborted, 'the second source aborted')
  })

  it('stop over version 2: a moderator may stop any stream and gets an ack; a plain member is refused', async () => {
    const room = newRoom()
    const MOD = { cookie: 'session=user-modv2.Moderator' }
    expect((await callServer(a, { call: 'addMember', room, userId: 'user-modv2', role: 'moderator' })).status).toBe(200)
    const moderator = track(await ChatSocketV2.openV2(b.wsUrl(''), {}, { headers: MOD }))
    const bob = track(await ChatSocketV2.openV2(a.wsUrl(''), {}, { headers: BOB }))
    expect(await moderator.join(room)).toMatchObject({ type: 'caught_up' })
    expect(await bob.join(room)).toMatchObject({ type: 'caught_up' })
    const started = await startStream(a, { room, chunks: ['Unasked'], delay: 20, forever: true })
    const { id } = started.body
    await bob.waitFor(frame => frame.type === 'delta' && frame.id === id, 'a delta')
    bob.send({ type: 'stop', room, id, ref: 'bob-stop' })
    expect(await bob.waitFor(frame => frame.ref === 'bob-stop', 'refusal')).toMatchObject({ type: 'error', code: 'forbidden', room })
    moderator.send({ type: 'stop', room, id, ref: 'mod-stop' })
    expect(await moderator.waitFor(frame => frame.ref === 'mod-stop', 'ack')).toMatchObject({ type: 'ack', room, id })
    expect(await bob.waitFor(frame => frame.type === 'edit' && frame.target === id, 'the end')).toMatchObject({ ended: true, incomplete: 'stopped' })
    await until(async () => (await runOf(a, started.body.run)).aborted, 'the source aborted')
  })

  it('limits refuse a flood: open streams per room, length, chunk rate', async () => {
    const room = newRoom()
    const watcher = track(await ChatSocket.open(a.wsUrl(''), { room, name: 'watcher', deltas: 1 }))
    await watcher.waitFor(frame => frame.type === 'presence', 'presence')
    const first = await startStream(a, { room, chunks: ['one'], delay: 20, forever: true })
    const second = await startStream(b, { room, chunks: ['two'], delay: 20, forever: true })
    expect([first.status, second.status]).toEqual([200, 200])
    // The other instance hears of the second stream over the bus.
    await watcher.waitFor(frame => frame.type === 'delta' && frame.id === second.body.id, 'the second stream')
    const third = await startStream(a, { room, chunks: ['three'] })
    expect(third.status).toBe(429)
    expect(third.body.data).toMatchObject({ code: 'rate_limited' })
    const messages = (await callServer<Frame[]>(a, { call: 'history', room })).body
    expect(messages.map(frame => frame.id)).toEqual([first.body.id, second.body.id])
    await runOf(a, first.body.run, true)
    await runOf(b, second.body.run, true)
    await watcher.waitFor(ends(second.body.id), 'the second stopped')
    await watcher.waitFor(ends(first.body.id), 'the first stopped')

    // A burst of starts on one instance: the limit holds for starts racing each other.
    const burstRoom = newRoom()
    const burst = await Promise.all(Array.from({ length: 6 }, () => startStream(a, { room: burstRoom, chunks: ['x'], delay: 20, forever: true })))
    expect(burst.map(answer => answer.status).sort()).toEqual([200, 200, 429, 429, 429, 429])
    for (const answer of burst.filter(answer => answer.status === 200)) await runOf(a, answer.body.run, true)
    await until(async () => (await callServer<Frame[]>(a, { call: 'history', room: burstRoom })).body.every(frame => frame.incomplete === 'stopped'), 'the burst stopped')

    // A runaway model: 2,000 characters against a limit of 500, then 1,000 chunks in a burst against 100 a second.
    const long = await startStream(a, { room, chunks: Array.from({ length: 40 }, () => 'x'.repeat(50)), delay: 5 })
    expect(long.status).toBe(200)
    const longEnd = await watcher.waitFor(ends(long.body.id), 'too long')
    expect(longEnd).toMatchObject({ incomplete: 'too_long' })
    expect(longEnd.message).toBe('x'.repeat(500))
    const fast = await startStream(b, { room, chunks: Array.from({ length: 1000 }, () => 'y') })
    const fastEnd = await watcher.waitFor(ends(fast.body.id), 'rate limited')
    expect(fastEnd).toMatchObject({ incomplete: 'rate_limited' })
    expect((fastEnd.message as string).length).toBeLessThanOrEqual(100)
    await until(async () => (await runOf(b, fast.body.run)).aborted, 'the fast source aborted')
    expect((await runOf(b, fast.body.run)).yielded).toBeLessThan(1000)
    // Bad requests: a replyTo that is no message, a room that is no room.
    expect((await startStream(a, { room, chunks: ['x'], replyTo: 999_999 })).status).toBe(400)
    expect((await startStream(a, { room: 'bad room!', chunks: ['x'] })).status).toBe(400)
  })

  it('deleting a streaming message stops its stream: its source is aborted, no more of its text goes out, and nothing more is stored', async () => {
    const room = newRoom()
    const watcher = track(await ChatSocket.open(b.wsUrl(''), { room, name: 'watcher', deltas: 1 }))
    await watcher.waitFor(frame => frame.type === 'presence', 'presence')
    // 9 characters every 50 ms: still streaming when deleted, seconds before its 500-character bound cuts it.
    const started = await startStream(a, { room, chunks: ['Soon gone'], delay: 50, forever: true })
    const { id } = started.body
    await watcher.waitFor(frame => frame.type === 'delta' && frame.id === id, 'a delta')
    expect((await callServer(b, { call: 'delete', room, target: id })).status).toBe(200)
    await watcher.waitFor(frame => frame.type === 'delete' && frame.target === id, 'the delete')
    // At once, not at the next checkpoint (200 ms here): the instance running it heard the delete.
    await until(async () => (await runOf(a, started.body.run)).aborted, 'the source aborted', 5000)
    await sleep(3 * CHECKPOINT)
    // The deleted text reaches nobody more: no delta after the delete, none for a newcomer.
    const deleteAt = watcher.frames.findIndex(frame => frame.type === 'delete' && frame.target === id)
    expect(watcher.frames.slice(deleteAt).filter(frame => frame.type === 'delta' && frame.id === id)).toEqual([])
    const newcomer = track(await ChatSocket.open(a.wsUrl(''), { room, name: 'newcomer', deltas: 1 }))
    await newcomer.waitFor(frame => frame.type === 'presence', 'presence')
    await sleep(200)
    expect(newcomer.frames.filter(frame => frame.type === 'delta')).toEqual([])
    // Its tombstone only: no final edit brought its text back.
    const history = (await callServer<Frame[]>(a, { call: 'history', room })).body
    expect(history).toEqual([expect.objectContaining({ id, deleted: true, message: '' })])
    expect(history[0]!.streaming).toBeUndefined()
    expect(watcher.frames.some(frame => frame.type === 'edit' && frame.target === id)).toBe(false)
    expect(a.logs()).not.toContain('could not store a stream')
  })

  it('answers a mention with the room\'s history in the AI SDK format (chat:mention + aiMessages)', async () => {
    const room = newRoom('ai')
    expect((await callServer(a, { call: 'addAiMember', room })).status).toBe(200)
    const alice = track(await ChatSocket.open(b.wsUrl(''), { room, deltas: 1 }, { headers: ALICE }))
    await alice.waitFor(frame => frame.type === 'presence', 'presence')
    alice.send({ type: 'message', message: 'hello everyone', cid: 'm-1' })
    await alice.waitFor(frame => frame.type === 'message' && frame.cid === 'm-1', 'first')
    alice.send({ type: 'message', message: '@Assistant what is 6x7?', cid: 'm-2' })
    const asked = await alice.waitFor(frame => frame.type === 'message' && frame.cid === 'm-2', 'the question')
    expect(asked.mentions).toEqual(['bot-assistant'])
    const reply = await alice.waitFor(frame => frame.type === 'message' && frame.uid === 'bot-assistant', 'the reply', 10_000)
    expect(reply).toMatchObject({ streaming: true, replyTo: { id: asked.id } })
    const end = await alice.waitFor(ends(reply.id as number), 'the reply\'s end', 10_000)
    expect(end.message).toBe('2 messages; last user: Alice: @Assistant what is 6x7?')
    expect((await callServer(b, { call: 'aiMessages', room })).body).toEqual([
      { role: 'user', content: 'Alice: hello everyone' },
      { role: 'user', content: 'Alice: @Assistant what is 6x7?' },
      { role: 'assistant', content: '2 messages; last user: Alice: @Assistant what is 6x7?' },
    ])
  })

  it('a SIGKILL mid-stream leaves one stored, incomplete message and no duplicate after restart', async () => {
    const room = newRoom()
    const started = await startStream(a, { room, chunks: ['Before the crash'], delay: 20, forever: true })
    const { id } = started.body
    // Past a few checkpoints: the text so far is in the store.
    await until(async () => ((await callServer<Frame[]>(a, { call: 'history', room })).body[0]?.message as string | undefined)?.startsWith('Before the crash 0 1 2'), 'a checkpoint', 10_000)
    const watcher = a === b ? undefined : track(await ChatSocket.open(b.wsUrl(''), { room, name: 'survivor', deltas: 1 }))
    await watcher?.waitFor(frame => frame.type === 'delta', 'a delta')
    await a.stop('SIGKILL')
    if (watcher) {
      // The other instance's sweep stores it as interrupted, with its last checkpoint.
      const end = await watcher.waitFor(ends(id), 'the interrupted end', 10_000)
      expect(end).toMatchObject({ incomplete: 'interrupted' })
    }
    await a.start()
    const history = await until(async () => {
      const page = (await callServer<Frame[]>(a, { call: 'history', room })).body
      return page[0]?.incomplete ? page : undefined
    }, 'the stream stored as interrupted', 15_000)
    expect(history).toHaveLength(1)
    expect(history[0]).toMatchObject({ id, incomplete: 'interrupted', uid: 'bot-assistant' })
    expect(history[0]!.streaming).toBeUndefined()
    expect((history[0]!.message as string).startsWith('Before the crash 0 1')).toBe(true)
    // No second sweep, no duplicate: later sweeps find nothing.
    await sleep(4 * CHECKPOINT)
    const again = (await callServer<Frame[]>(b, { call: 'history', room })).body
    expect(again).toHaveLength(1)
    expect(again[0]).toMatchObject({ id, message: history[0]!.message, incomplete: 'interrupted' })
  })
})
