/**
 * One event stream per tab for every room and the rooms list (docs/PROTOCOL.md "Version 2 over
 * SSE"): the SSE carrier of ./sharedLink.ts. `GET <sseRoute>?v=2` opens the stream, whose `hello`
 * names it; each command is a POST to `<sseRoute>?v=2&stream=<id>` with the stream's identity
 * parameters (a guest's key: a keyless guest is a new person on every request). A server that
 * does not speak version 2 on SSE gets the version 1 per-room streams instead.
 */
import type { ChatErrorFrame } from '../shared/protocol'
import { askShared, openSharedLink, type CarrierEvents, type CarrierKind, type SharedAnswer, type SharedCarrier, type SharedCommand, type SharedFrame } from './sharedLink'
import { openSseLink, parseFrame, type ChatLink, type ChatLinkEvents, type ChatLinkTargets } from './transport'

// A POST that hangs would hold up every command of its room queued behind it.
const POST_TIMEOUT = 15_000

/** A POST refused with an error frame, as the stream would have answered it. */
function answerOfRefusal(command: SharedCommand, refusal: ChatErrorFrame): SharedFrame {
  // A refused join ends that room's link, as `join_refused` does; the link then asks the route why.
  if (command.type === 'join' && command.room !== undefined) return { type: 'join_refused', room: command.room, ...(command.ref ? { ref: command.ref } : {}), code: refusal.code, message: refusal.message }
  return {
    ...refusal,
    ...(command.room === undefined ? {} : { room: command.room }),
    ...(command.ref === undefined ? {} : { ref: command.ref }),
    // A message's refusal is about its cid, as a version 1 POST's is.
    ...(refusal.cid || !command.cid ? {} : { cid: command.cid }),
  }
}

/**
 * One version 2 event stream. A room's commands are POSTed one after another (the server hands
 * each POST on as it comes: a `leave` and the `join` after it, or two messages, must not cross);
 * a POST without an answer, or naming a stream that is gone (`404`), ends the stream.
 */
function openStreamCarrier(url: URL, events: CarrierEvents): SharedCarrier {
  const streamUrl = new URL(url)
  streamUrl.searchParams.set('v', '2')
  const source = new EventSource(streamUrl)
  const aborter = new AbortController()
  /** Each room's (`''`: no room's) last POST in line. */
  const lanes = new Map<string, Promise<void>>()
  let stream: string | undefined
  let closed = false
  source.onmessage = (event) => {
    const frame = parseFrame(event.data) as SharedFrame | undefined
    if (!frame) return
    if (stream === undefined && frame.type === 'hello' && typeof frame.stream === 'string') stream = frame.stream
    events.frame(frame)
  }
  // EventSource retries by itself, with a new stream id the rooms would not know: the links reconnect instead.
  source.onerror = () => dropped()
  function close() {
    closed = true
    source.onmessage = source.onerror = null
    source.close()
    aborter.abort()
  }
  function dropped() {
    if (closed) return
    close()
    events.dropped()
  }
  async function post(target: URL, command: SharedCommand) {
    if (closed) return
    let status: number | undefined
    let text = ''
    try {
      const response = await fetch(target, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(command),
        signal: AbortSignal.any([aborter.signal, AbortSignal.timeout(POST_TIMEOUT)]),
      })
      status = response.status
      text = await response.text()
    }
    catch {
      // No answer: handled below, as a stream that is gone.
    }
    // A `leave`'s refusal is about a link already gone.
    if (closed || status === 202 || command.type === 'leave') return
    const refusal = status === 404 ? undefined : parseFrame(text) as SharedFrame | undefined
    if (refusal?.type !== 'error') return dropped()
    events.frame(answerOfRefusal(command, refusal))
  }
  return {
    send(command) {
      if (closed || stream === undefined) return false
      const target = new URL(streamUrl)
      target.searchParams.set('stream', stream)
      const lane = command.room ?? ''
      const queued = (lanes.get(lane) ?? Promise.resolve()).then(() => post(target, command))
      lanes.set(lane, queued)
      void queued.then(() => lanes.get(lane) === queued && lanes.delete(lane))
      return true
    },
    close,
  }
}

const streamCarrier: CarrierKind = {
  open: openStreamCarrier,
  // The next message goes once the previous one is answered on the stream: POSTs keep no order of their own.
  window: 1,
  openVersionOne: openSseLink,
}

/**
 * A link to one room (the URL's `room` and `since`), or to the rooms list (`rooms`), on the tab's
 * shared version 2 event stream; a version 1 stream of its own where the server speaks version 1 only.
 */
export function openSharedSseLink(targets: ChatLinkTargets, events: ChatLinkEvents): ChatLink {
  return openSharedLink(streamCarrier, targets, events)
}

/** One command with its `ref` on the tab's shared event stream (a POST; its answer comes on the stream; see `askShared`). */
export function askSharedStream(target: URL, command: SharedCommand & { ref: string }, timeout: number): Promise<SharedAnswer | 'v1' | undefined> {
  return askShared(streamCarrier, target, command, timeout)
}
