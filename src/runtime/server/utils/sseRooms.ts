// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- an ambient module declaration has nothing to import
/// <reference path="../nitro.d.ts" />
/**
 * Protocol version 2 over SSE (docs/PROTOCOL.md, "Version 2 over SSE"): one event stream carries
 * every room of a tab, its commands come as POSTs naming the stream. The stream is the same kind
 * of connection as a version 2 WebSocket (a `MultiRoomMember`, the same command handling in
 * ./wsRooms.ts); only where its frames go differs.
 */
import { randomBytes } from 'node:crypto'
import type { H3Event } from 'h3'
import { getQuery, getRequestHeader, openEventStream, readBoundedBody, setResponseHeader, setResponseStatus } from '#nuxt-chat/nitro'
import { errorFrame, type ChatErrorFrame } from '../../shared/protocol'
import { parseClientFrameV2 } from '../../shared/protocolV2'
import type { ChatRuntimeConfig } from '../../types'
import type { ChatAdmission } from './access'
import { limitSubjectOf } from './chatLimits'
import { ConnectionHold, holdConnection } from './connectionCaps'
import type { ChatEventStream } from './httpExchange'
import { refuse, refuseLimited } from './httpAdmission'
import { trackEventStream } from './shutdown'
import { StreamTransport } from '../transport/streamTransport'
import { handleInOrder } from './wsMember'
import { commandOf, greetConnection, handleRoomMessage, MultiRoomMember } from './wsRooms'

/** Open version 2 streams of this instance by id. */
const streams = new Map<string, StreamRoomsMember>()

/** A version 2 connection written to an SSE stream instead of a WebSocket. */
export class StreamRoomsMember extends MultiRoomMember {
  declare readonly stream: ChatEventStream
  /** Its id: 144 random bits, what its POSTs name. */
  declare readonly id: string

  constructor(stream: ChatEventStream, admission: ChatAdmission, hold: ConnectionHold, maxBufferedBytes: number) {
    super(new StreamTransport(stream), admission.user, admission.ip, hold, maxBufferedBytes, admission.data)
    this.stream = stream
    this.id = randomBytes(18).toString('base64url')
  }

  /** A stream's reading cannot be paused: each POST in flight holds a connection slot instead. */
  override received() {
    this.rare().waiting++
  }
}

const STREAM_HEADERS = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache, no-transform',
  'connection': 'keep-alive',
  // nginx: do not buffer the stream.
  'x-accel-buffering': 'no',
}

/** Is this `/api/sse` request a version 2 one (`?v=2`)? */
export function asksVersion2(event: H3Event): boolean {
  return getQuery(event).v === '2'
}

/** `GET /api/sse?v=2`: open the person's stream (its slot held until it ends), greet it with `hello` and its id. */
export function openRoomsStream(event: H3Event, admission: ChatAdmission, config: ChatRuntimeConfig): unknown {
  const hold = holdConnection(limitSubjectOf(admission), config)
  if (!(hold instanceof ConnectionHold)) return refuseLimited(event, hold)
  const stream = trackEventStream(openEventStream(event, STREAM_HEADERS))
  stream.write(`retry: ${config.sse.retry}\n\n`)
  const connection = new StreamRoomsMember(stream, admission, hold, config.maxBufferedBytes)
  streams.set(connection.id, connection)
  const keepAlive = setInterval(() => stream.write(': ping\n\n'), config.sse.keepAlive)
  stream.onClose(() => {
    clearInterval(keepAlive)
    streams.delete(connection.id)
    hold.release()
    connection.endAll()
  })
  greetConnection(connection, config, admission.nameRefused, connection.id)
  return stream.answer()
}

/**
 * `POST /api/sse?v=2&stream=S`: one command for the person's stream. `202` once taken (a message
 * once handled); its answers go on the stream. Another person's stream, or one that ended, is `not_found`.
 */
export async function answerStreamCommand(event: H3Event, admission: ChatAdmission, config: ChatRuntimeConfig): Promise<ChatErrorFrame | string> {
  const id = getQuery(event).stream
  const connection = typeof id === 'string' ? streams.get(id) : undefined
  // The same answer for every stream that is not this person's: ids are not probed.
  if (!connection || connection.user.id !== admission.user.id || connection.stream.closed()) return refuse(event, 404, errorFrame('not_found', 'No such stream: open a new one'))
  // An open POST holds a connection slot of its address, as a version 1 POST does.
  const hold = holdConnection(limitSubjectOf(admission), config)
  if (!(hold instanceof ConnectionHold)) return refuseLimited(event, hold)
  try {
    const body = await readBoundedBody(event, config.maxPayload, config.bodyTimeout)
    if (body === 'too_large') return refuse(event, 413, errorFrame('too_long', `Body is larger than ${config.maxPayload} bytes`))
    if (body === 'timeout') {
      setResponseHeader(event, 'connection', 'close')
      return refuse(event, 408, errorFrame('bad_request', `Body not received within ${config.bodyTimeout} ms`))
    }
    if (!(getRequestHeader(event, 'content-type') ?? '').includes('json')) return refuse(event, 400, errorFrame('bad_request', 'A version 2 command is a JSON object (content-type: application/json)'))
    const parsed = parseClientFrameV2(body)
    if (parsed.type === 'invalid') {
      const frame = errorFrame('bad_request', parsed.reason, parsed.cid)
      return refuse(event, 400, { ...frame, ...(parsed.room ? { room: parsed.room } : {}), ...(parsed.ref ? { ref: parsed.ref } : {}) })
    }
    const send = commandOf(connection, body)
    if (send) await handleInOrder(connection, handed => handleRoomMessage(connection, send.subscription, send.command, handed))
    setResponseStatus(event, 202)
    return ''
  }
  finally {
    hold.release()
  }
}

/** How many version 2 streams this instance serves (tests, metrics). */
export function openRoomsStreams(): number {
  return streams.size
}
