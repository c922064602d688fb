/**
 * Streaming messages (docs/PROTOCOL.md, "Streaming messages"): an AI member's or bot's reply,
 * stored at once, grown by `delta` frames on every instance, stored with its final text as an
 * edit when its source ends, and swept as `interrupted` when the instance running it died.
 */
import { randomUUID } from 'node:crypto'
import { errorFrame, MAX_ID, type ChatDeltaFrame, type ChatErrorFrame, type ChatEventFrame, type ChatMessageFrame, type ChatStoredFrame, type ChatStreamCut, type ChatTypingFrame, type ChatUser } from '../../shared/protocol'
import type { ChatStreamsOptions } from '../../types'
import type { BusEvent, ChatBus } from './bus'
import { messageFrame, type Member } from './roomDelivery'
import { RoomFrame } from '../transport/frame'
import { MAX_STORED_TEXT, RoomLogInputError, RoomLogRefusal, type RoomLog } from './roomLog'
import { isStreamSource, readerOf, type ChatStreamSourceInput, type ChunkReader } from './streamSource'
import { chatDefaults } from '../../defaults'

/** The typing frames of a stream's author go out at most this often (ms), as a person's. */
const TYPING_EVERY = 1000
/** Open streams a sweep closes at most per pass. */
const SWEEP_BATCH = 100
/** A stream whose owner missed this many checkpoints is a dead instance's. */
const STALE_CHECKPOINTS = 3

/** What `stream` takes besides the room and the source. */
export interface ChatStreamOptions {
  /** Who writes it: the AI member or bot. */
  as: ChatUser
  /** The message it answers: its author may stop it. */
  replyTo?: number
  /** Write it in this message's thread. */
  thread?: number
  /** Aborting it stops the stream (stored as `stopped`), as a member's `stop` does. */
  signal?: AbortSignal
}

/** How a stream ended. */
export interface ChatStreamResult {
  /** The final frame (the `edit` that stored its text). */
  frame?: ChatEventFrame
  text: string
  /** Why it was cut; absent when the source ended. */
  incomplete?: ChatStreamCut
}

/** A stream started: its message, and its end. */
export interface ChatStreamHandle {
  id: number
  /** The message as stored at the start (`streaming: true`). */
  frame: ChatMessageFrame
  /** Settles when it is stored with its final text (never rejects). */
  done: Promise<ChatStreamResult>
  /** Stop it (as `stopped`). */
  stop: () => void
}

/** A stream a member or the app may not start: its refusal. */
export class ChatStreamRefusal extends Error {
  constructor(readonly status: number, readonly frame: ChatErrorFrame) {
    super(frame.message)
  }
}

/** An open stream as every instance knows it: its text so far (what the deltas carried). */
interface LiveStream {
  room: string
  id: number
  user: string
  uid: string
  owner: string
  text: string
  /** When this instance last heard of it (its owner re-announces it at each checkpoint): one not heard of for a while is forgotten. */
  heardAt: number
}

/** A stream this instance runs. */
interface OwnStream extends LiveStream {
  controller: AbortController
  /** Text read but not yet sent as a delta (sent at the end of the turn). */
  pending: string
  flushing: boolean
  typingAt: number
  checkpointed: number
  /** Chunks in the current second, and when it began. */
  chunks: number
  windowStart: number
  cut?: ChatStreamCut
}

/** What the hub lends the streams. */
export interface ChatStreamsDeps {
  config: { streams?: Partial<ChatStreamsOptions> }
  store: RoomLog
  bus: ChatBus
  logger: { error: (message: string, error?: unknown) => void }
  /** Hand a stored frame to delivery here and on every instance (as any stored message). */
  fanOut: (frame: ChatStoredFrame, text: string) => void
  /** Write a frame to this instance's connections to a room. */
  broadcast: (room: string, frame: RoomFrame) => void
  /** Write a `delta` to this instance's connections to a room that take deltas. */
  broadcastDelta: (room: string, frame: RoomFrame) => void
  /** Is `user` an owner or moderator of the room? */
  isModerator: (room: string, user: ChatUser) => Promise<boolean>
}

export type ChatStreams = ReturnType<typeof createChatStreams>

/** The streams of one instance, and what it knows of the others' (through the bus). */
export function createChatStreams({ config, store, bus, logger, fanOut, broadcast, broadcastDelta, isModerator }: ChatStreamsDeps) {
  const me = randomUUID()
  // Defaults for a hub made without them (tests, an app built before the option).
  const options: ChatStreamsOptions = { ...chatDefaults.streams, ...config.streams }
  const maxLength = Math.min(MAX_STORED_TEXT, options.maxLength)
  const live = new Map<string, LiveStream>()
  const own = new Map<string, OwnStream>()
  /** Streams being started (their checks and store write under way), by room: they count against the limits already. */
  const starting = new Map<string, number>()
  let startingTotal = 0
  const keyOf = (room: string, id: number) => `${room}\n${id}`
  /** Streams whose message was deleted, and when: their deltas still on the bus are dropped (pruned at each checkpoint). */
  const deleted = new Map<string, number>()

  const publish = (room: string, op: Record<string, unknown>) => bus.publish({ kind: 'stream', room, frame: JSON.stringify(op) })

  function sendDelta(stream: LiveStream, offset: number, text: string, toOthers: boolean) {
    const frame: ChatDeltaFrame = { type: 'delta', room: stream.room, id: stream.id, offset, text, user: stream.user, uid: stream.uid, message: '' }
    const json = JSON.stringify(frame)
    broadcastDelta(stream.room, new RoomFrame(json))
    if (toOthers) bus.publish({ kind: 'delta', room: stream.room, frame: json })
  }

  /** Send what was read this turn as one delta, and (once a second) that the author is typing. */
  function flush(stream: OwnStream) {
    stream.flushing = false
    if (!stream.pending) return
    const offset = stream.text.length
    stream.text += stream.pending
    stream.pending = ''
    sendDelta(stream, offset, stream.text.slice(offset), true)
    const now = Date.now()
    if (now - stream.typingAt >= TYPING_EVERY) {
      stream.typingAt = now
      const typing: ChatTypingFrame = { type: 'typing', room: stream.room, user: stream.user, uid: stream.uid, message: '' }
      const json = JSON.stringify(typing)
      broadcast(stream.room, new RoomFrame(json))
      bus.publish({ kind: 'typing', room: stream.room, frame: json })
    }
  }

  /** Take one chunk of a stream's source within its limits; false once the stream is cut. */
  function take(stream: OwnStream, chunk: string): boolean {
    const now = Date.now()
    if (now - stream.windowStart >= 1000) {
      stream.windowStart = now
      stream.chunks = 0
    }
    if (++stream.chunks > options.chunksPerSecond) {
      stream.cut = 'rate_limited'
      return false
    }
    const room = maxLength - stream.text.length - stream.pending.length
    if (chunk.length > room) {
      stream.pending += chunk.slice(0, Math.max(0, room))
      stream.cut = 'too_long'
    }
    else {
      stream.pending += chunk
    }
    if (!stream.flushing) {
      stream.flushing = true
      // Coalesced: the chunks of one event-loop turn go out as one delta.
      setImmediate(() => flush(stream))
    }
    return stream.cut === undefined
  }

  /** Store a stream's final text as an edit of its message (marked `ended`, and `incomplete` when cut) and deliver it. */
  async function storeEnd(stream: Pick<LiveStream, 'room' | 'id' | 'user' | 'uid'>, text: string, cut: ChatStreamCut | undefined): Promise<ChatEventFrame | undefined> {
    const result = await store.append({ room: stream.room, user: stream.user, sender: stream.uid, message: text.toWellFormed().replaceAll('\0', ''), ts: Date.now(), kind: 'edit', target: stream.id, endsStream: true })
    const frame = messageFrame(result.message) as ChatEventFrame
    frame.ended = true
    if (cut) frame.incomplete = cut
    fanOut(frame, JSON.stringify(frame))
    return frame
  }

  function forget(room: string, id: number) {
    const key = keyOf(room, id)
    live.delete(key)
    own.delete(key)
  }

  /** Read the source to its end (or the stream's cut), then store the final text. */
  async function run(stream: OwnStream, reader: ChunkReader): Promise<ChatStreamResult> {
    const aborted = new Promise<void>(resolve => stream.controller.signal.addEventListener('abort', () => resolve(), { once: true }))
    try {
      for (;;) {
        const next = await Promise.race([reader.next(), aborted.then(() => undefined)])
        if (!next) {
          stream.cut ??= 'stopped'
          break
        }
        if (next.done) break
        if (next.value === undefined || next.value === null) continue
        if (!take(stream, String(next.value))) break
      }
    }
    catch (error) {
      if (!stream.controller.signal.aborted) logger.error('[nuxt-chat] a stream\'s source failed', error)
      stream.cut ??= stream.controller.signal.aborted ? 'stopped' : 'error'
    }
    if (stream.cut && !stream.controller.signal.aborted) stream.controller.abort(new Error(`stream cut: ${stream.cut}`))
    void reader.close()
    flush(stream)
    const text = stream.text
    const cut = stream.cut
    try {
      // Conditional on still owning it: a sweep that took it for dead (this instance stalled) stored it already.
      if (!await store.streamEnd(stream.room, stream.id, me, cut)) return { text, incomplete: cut ?? 'interrupted' }
      const frame = await storeEnd(stream, text, cut)
      return { frame, text, ...(cut ? { incomplete: cut } : {}) }
    }
    catch (error) {
      // Deleted meanwhile: nothing to store. The store down: a later sweep stores the last checkpoint.
      if (!(error instanceof RoomLogRefusal)) logger.error('[nuxt-chat] could not store a stream\'s end', error)
      return { text, incomplete: cut ?? 'interrupted' }
    }
    finally {
      forget(stream.room, stream.id)
      publish(stream.room, { op: 'end', id: stream.id })
    }
  }

  /** Start a stream: refused past the limits; else its message is stored (`streaming`) and delivered, and its source read. */
  async function start(room: string, source: ChatStreamSourceInput, streamOptions: ChatStreamOptions): Promise<ChatStreamHandle> {
    const refuse = (status: number, code: ChatErrorFrame['code'], message: string) => new ChatStreamRefusal(status, errorFrame(code, message))
    if (own.size + startingTotal >= options.perInstance) throw refuse(429, 'rate_limited', `This instance runs ${options.perInstance} streams already`)
    let inRoom = starting.get(room) ?? 0
    for (const stream of live.values()) if (stream.room === room) inRoom++
    if (inRoom >= options.perRoom) throw refuse(429, 'rate_limited', `Room "${room}" has ${options.perRoom} open streams already`)
    // Counted from now: starts racing in one turn cannot pass the limits together.
    starting.set(room, (starting.get(room) ?? 0) + 1)
    startingTotal++
    try {
      return await open(room, source, streamOptions, refuse)
    }
    finally {
      startingTotal--
      const left = starting.get(room)! - 1
      if (left) starting.set(room, left)
      else starting.delete(room)
    }
  }

  /** Check the message it answers, make the source, store the message and start reading. */
  async function open(room: string, source: ChatStreamSourceInput, { as: user, replyTo, thread, signal }: ChatStreamOptions, refuse: (status: number, code: ChatErrorFrame['code'], message: string) => ChatStreamRefusal): Promise<ChatStreamHandle> {
    for (const [field, id] of [['replyTo', replyTo], ['thread', thread]] as const) {
      if (id === undefined) continue
      const named = Number.isSafeInteger(id) && id >= 1 && id <= MAX_ID ? await store.message(room, id) : undefined
      if (!named || named.deleted || (field === 'thread' && named.thread !== undefined)) throw refuse(400, 'bad_request', `No message ${id} to answer in this room`)
    }
    const controller = new AbortController()
    // Made before anything is stored: a source that cannot be read stores nothing.
    const made = typeof source === 'function' ? await source(controller.signal) : source
    if (!isStreamSource(made)) {
      controller.abort(new Error('not a source'))
      throw refuse(400, 'bad_request', '`source` gave no async iterable of strings, ReadableStream or streamText() result')
    }
    const reader = readerOf(made)
    const now = Date.now()
    let result
    try {
      // Stored as an open stream in the same statement: no reader ever sees it without `streaming`.
      result = await store.append({ room, user: user.name, sender: user.id, guest: user.guest, message: '', ts: now, replyTo, thread, streamOwner: me })
    }
    catch (error) {
      // Nothing stored: the model call the source may have begun is cancelled.
      controller.abort(new Error('not stored'))
      void reader.close()
      if (error instanceof RoomLogInputError) throw refuse(400, 'bad_request', error.message)
      logger.error('[nuxt-chat] could not store a stream\'s message', error)
      throw refuse(503, 'unavailable', 'The stream could not be stored; try again')
    }
    const id = result.message.id
    const frame = messageFrame(result.message) as ChatMessageFrame
    const stream: OwnStream = { room, id, user: user.name, uid: user.id, owner: me, text: '', heardAt: now, controller, pending: '', flushing: false, typingAt: 0, checkpointed: now, chunks: 0, windowStart: now }
    live.set(keyOf(room, id), stream)
    own.set(keyOf(room, id), stream)
    publish(room, { op: 'open', id, user: user.name, uid: user.id, owner: me })
    fanOut(frame, JSON.stringify(frame))
    signal?.addEventListener('abort', () => stopOwn(stream), { once: true })
    if (signal?.aborted) stopOwn(stream)
    return { id, frame, done: run(stream, reader), stop: () => stopOwn(stream) }
  }

  /**
   * A stream's message was deleted (here or on another instance): its text so far goes to nobody
   * more, not to newcomers nor as the deltas still on their way, and the instance running it stops
   * reading its source at once (not at its next checkpoint).
   */
  function messageDeleted(room: string, id: number) {
    const key = keyOf(room, id)
    if (!live.delete(key)) return
    deleted.set(key, Date.now())
    const mine = own.get(key)
    if (!mine) return
    mine.pending = ''
    mine.cut ??= 'stopped'
    stopOwn(mine)
  }

  /** Any open stream in the room? (Most rooms have none: a stored change is looked at only then.) */
  function streaming(room: string): boolean {
    for (const stream of live.values()) if (stream.room === room) return true
    return false
  }

  function stopOwn(stream: OwnStream) {
    if (stream.controller.signal.aborted) return
    stream.cut ??= 'stopped'
    stream.controller.abort(new Error('stopped'))
  }

  /**
   * A member's `stop` of stream `id` in `room`: the author of the message it answers, or an owner
   * or moderator. Reaches the instance that runs it through the bus.
   */
  async function stop(room: string, id: number, user: ChatUser, moderator?: boolean): Promise<{ ok: true } | { status: number, error: ChatErrorFrame }> {
    const message = await store.message(room, id)
    if (!message?.streaming) return { status: 404, error: errorFrame('not_found', `No open stream ${id} in this room`) }
    const original = message.replyTo ? await store.message(room, message.replyTo.id) : undefined
    const allowed = (original?.uid !== undefined && original.uid === user.id) || moderator === true || await isModerator(room, user)
    if (!allowed) return { status: 403, error: errorFrame('forbidden', 'Only who asked, or a moderator, may stop this reply') }
    const mine = own.get(keyOf(room, id))
    if (mine) stopOwn(mine)
    else publish(room, { op: 'stop', id })
    return { ok: true }
  }

  /** After a connection's replay: the text so far of each open stream of the room, as one delta from offset 0. */
  function caughtUp(room: string, member: Member) {
    if (!member.takesDeltas) return
    for (const stream of live.values()) {
      if (stream.room !== room || !stream.text) continue
      const frame: ChatDeltaFrame = { type: 'delta', room, id: stream.id, offset: 0, text: stream.text, user: stream.user, uid: stream.uid, message: '' }
      member.write(new RoomFrame(JSON.stringify(frame)))
    }
  }

  // ---- other instances ----
  bus.onEvent((event: BusEvent) => {
    if (event.kind === 'delta') heardDelta(event.room, event.frame)
    else if (event.kind === 'stream') heardStream(event.room, event.frame)
  })

  function heardDelta(room: string, text: string) {
    let delta: ChatDeltaFrame
    try {
      delta = JSON.parse(text) as ChatDeltaFrame
    }
    catch {
      return
    }
    if (delta?.type !== 'delta' || delta.room !== room || typeof delta.text !== 'string' || !Number.isSafeInteger(delta.offset) || !Number.isSafeInteger(delta.id)) return
    const key = keyOf(room, delta.id)
    if (deleted.has(key)) return
    let stream = live.get(key)
    if (!stream) live.set(key, stream = { room, id: delta.id, user: delta.user, uid: delta.uid, owner: '', text: '', heardAt: 0 })
    stream.heardAt = Date.now()
    if (delta.offset > stream.text.length) {
      // A gap (this instance came up mid-stream): ask the owner for the whole text, forward nothing partial.
      publish(room, { op: 'ask', id: delta.id })
      return
    }
    stream.text = stream.text.slice(0, delta.offset) + delta.text
    broadcastDelta(room, new RoomFrame(text))
  }

  function heardStream(room: string, text: string) {
    let op: { op?: string, id?: number, user?: string, uid?: string, owner?: string }
    try {
      op = JSON.parse(text)
    }
    catch {
      return
    }
    if (!op || !Number.isSafeInteger(op.id)) return
    const key = keyOf(room, op.id!)
    switch (op.op) {
      case 'open':
        if (typeof op.user !== 'string' || typeof op.uid !== 'string' || typeof op.owner !== 'string') break
        // Also its owner's heartbeat: a stream known already keeps its text.
        if (live.has(key)) live.get(key)!.heardAt = Date.now()
        else live.set(key, { room, id: op.id!, user: op.user, uid: op.uid, owner: op.owner, text: '', heardAt: Date.now() })
        break
      case 'end':
        live.delete(key)
        break
      case 'stop': {
        const mine = own.get(key)
        if (mine) stopOwn(mine)
        break
      }
      case 'ask': {
        const mine = own.get(key)
        if (mine?.text) sendDelta(mine, 0, mine.text, true)
        break
      }
    }
  }

  // ---- checkpoints and the sweep ----
  async function checkpoint() {
    const now = Date.now()
    for (const [key, at] of deleted) if (now - at > STALE_CHECKPOINTS * options.checkpoint) deleted.delete(key)
    // Other instances' streams whose end this instance missed (a bus outage) stop counting against the room's limit.
    for (const [key, stream] of live) if (!own.has(key) && now - stream.heardAt > STALE_CHECKPOINTS * options.checkpoint) live.delete(key)
    for (const stream of own.values()) {
      publish(stream.room, { op: 'open', id: stream.id, user: stream.user, uid: stream.uid, owner: me })
      try {
        if (!await store.streamCheckpoint(stream.room, stream.id, me, stream.text, now)) {
          // Swept as dead meanwhile (its message is stored as interrupted), or deleted: stop reading.
          stream.cut ??= 'interrupted'
          stream.controller.abort(new Error('interrupted'))
        }
        stream.checkpointed = now
      }
      catch (error) {
        logger.error('[nuxt-chat] could not checkpoint a stream', error)
      }
    }
  }

  /** Store the streams of dead instances (no checkpoint for `STALE_CHECKPOINTS` intervals) as `interrupted`, with their last checkpointed text. */
  async function sweep() {
    // A store without streams (a partial one in tests) has nothing to sweep.
    if (typeof store.staleStreams !== 'function') return
    let stale
    try {
      stale = await store.staleStreams(Date.now() - STALE_CHECKPOINTS * options.checkpoint, SWEEP_BATCH)
    }
    catch (error) {
      logger.error('[nuxt-chat] could not look for interrupted streams', error)
      return
    }
    for (const open of stale) {
      if (open.owner === me) continue
      try {
        // Conditional: of several instances sweeping at once, one stores it.
        if (!await store.streamEnd(open.room, open.id, open.owner, 'interrupted')) continue
        await storeEnd(open, open.message, 'interrupted')
        forget(open.room, open.id)
        publish(open.room, { op: 'end', id: open.id })
      }
      catch (error) {
        logger.error('[nuxt-chat] could not store an interrupted stream', error)
      }
    }
  }

  let running = false
  const timer = setInterval(() => {
    if (running) return
    running = true
    void checkpoint().then(sweep).finally(() => running = false)
  }, options.checkpoint)
  timer.unref?.()
  // At start: streams a killed process left are stored as interrupted as soon as they are stale.
  void sweep()

  return {
    start,
    stop,
    caughtUp,
    streaming,
    messageDeleted,
    /** Keep a bot's name, so `@name` finds it among the room's members. */
    saveName: (user: ChatUser) => store.saveUserName(user.id, user.name, Date.now()),
    /** This instance's id as a stream owner. */
    instance: me,
    /** Open streams this instance knows of (tests, metrics). */
    open: () => [...live.values()].map(({ room, id, owner }) => ({ room, id, owner })),
    /** The server stops: its streams end as `interrupted` (stored now if the store still answers, else by a later sweep). */
    close() {
      clearInterval(timer)
      for (const stream of own.values()) {
        stream.cut ??= 'interrupted'
        stopOwn(stream)
      }
    },
  }
}
