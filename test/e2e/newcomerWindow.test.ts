import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { sleep } from '../utils/chaos'
import { ChatSocket, ChatSocketV2, ChatStream, ChatStreamV2, until, type FrameV2 } from '../utils/clients'
import { serverPairs, type ServerPair } from '../utils/server'

/**
 * A room of 10 or more connections tells its joins at most every 50 ms (docs/PROTOCOL.md,
 * "Presence"), so a newcomer there waits for its full list and replay while messages are stored.
 * Each newcomer, on every transport, must still get every message once and in order.
 */
const ALICE = { cookie: 'session=alice-token' }
/** The stored ids a reader got in `room`, in arrival order. */
const idsOf = (frames: readonly FrameV2[], room: string, v2: boolean) =>
  frames.filter(frame => frame.type === 'message' && typeof frame.id === 'number' && (!v2 || frame.room === room)).map(frame => frame.id as number)

describe.each(serverPairs('nuxt_chat_window', { NUXT_CHAT_RATE_LIMIT: 'false' }))('newcomers waiting out the presence window (%s)', (_name, start) => {
  let pair: ServerPair
  const closers: (() => unknown)[] = []
  beforeAll(async () => {
    pair = await start()
  }, 60_000)
  afterAll(async () => {
    for (const close of closers) await close()
    await pair?.stop()
  })

  it('every newcomer gets each message once, in order, while the room is being written to', async () => {
    const [a, b] = pair.servers
    const room = `window-${randomUUID().slice(0, 8)}`
    const keep = <T extends { close: () => unknown }>(client: T) => (closers.push(() => client.close()), client)
    // 11 connections already in: the room is past the window's threshold.
    const crowd = await Promise.all(Array.from({ length: 11 }, (_, i) => ChatSocket.open((i % 2 ? b : a).wsUrl(''), { room, name: `crowd${i}` }).then(keep)))
    await Promise.all(crowd.map(socket => socket.waitFor(frame => frame.type === 'presence', 'the full list')))
    const writer = keep(await ChatSocket.open(a.wsUrl(''), { room, name: 'writer' }, { headers: ALICE }))
    await writer.waitFor(frame => frame.type === 'presence', 'the writer\'s list')

    const total = 120
    const writing = (async () => {
      for (let n = 1; n <= total; n++) {
        writer.send({ type: 'message', message: `m${n}`, cid: `w-${n}` })
        await sleep(3)
      }
    })()
    // Newcomers arrive while it writes, each on another transport or instance, some after the one before (inside its window).
    const newcomers: { ids: () => number[], since?: number }[] = []
    for (let round = 0; round < 4; round++) {
      await sleep(25)
      const server = round % 2 ? b : a
      const v1 = keep(await ChatSocket.open(server.wsUrl(''), { room, name: `v1-${round}` }))
      newcomers.push({ ids: () => idsOf(v1.frames as FrameV2[], room, false) })
      const sse = keep(await ChatStream.open(server.url('').replace(/\/$/, ''), { room, name: `sse-${round}` }))
      newcomers.push({ ids: () => idsOf(sse.frames as FrameV2[], room, false) })
      const v2 = keep(await ChatSocketV2.openV2(server.wsUrl(''), { name: `v2-${round}` }))
      const v2Joined = v2.join(room)
      newcomers.push({ ids: () => idsOf(v2.frames, room, true) })
      // A version 2 stream's commands come from its person: signed in.
      const streamV2 = keep(await ChatStreamV2.openV2(server.url('').replace(/\/$/, ''), { name: `s2-${round}` }, { cookie: `session=user-${room}-s2-${round}` }))
      const streamJoined = streamV2.join(room)
      newcomers.push({ ids: () => idsOf(streamV2.frames, room, true) })
      // One with a cursor: everything after it, once.
      const since = Math.max(0, (writer.messages.at(-1)?.id ?? 0) - 3)
      const resumed = keep(await ChatSocket.open(server.wsUrl(''), { room, name: `resumed-${round}`, since }))
      newcomers.push({ ids: () => idsOf(resumed.frames as FrameV2[], room, false), since })
      await Promise.all([v2Joined, streamJoined])
    }
    await writing
    await writer.waitFor(frame => frame.cid === `w-${total}` && typeof frame.id === 'number', 'the last message stored')
    const last = writer.messages.at(-1)!.id
    await until(() => newcomers.every(newcomer => newcomer.ids().at(-1) === last), 'every newcomer reaches the last message', 15_000)
    await sleep(200)
    for (const newcomer of newcomers) {
      const ids = newcomer.ids()
      const first = newcomer.since === undefined ? ids[0]! : newcomer.since + 1
      expect(ids).toEqual(Array.from({ length: last - first + 1 }, (_, i) => first + i))
    }
  }, 60_000)
})
