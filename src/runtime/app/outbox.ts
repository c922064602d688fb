import { backoffDelay, type BackoffOptions } from './backoff'

/** One message `send()` accepted, until the server stores or refuses it. */
export interface OutgoingMessage {
  cid: string
  message: string
  /** An edit or delete of message `target` instead of a message (revision 3). */
  action?: OutgoingAction
  /** Written to the current link and not answered yet. */
  inFlight: boolean
}

export interface OutgoingAction {
  /** `message`: a message with fields besides its text (`replyTo`). */
  type: 'message' | 'edit' | 'delete' | 'reaction'
  target?: number
  emoji?: string
  /** A message: the id of the message it answers. */
  replyTo?: number
  /** A thread reply: its parent's id, and whether it is also sent to the room. */
  thread?: number
  alsoInRoom?: true
  /** A message: its uploaded attachments' ids (uploaded before it is queued: a resend never uploads again). */
  files?: string[]
}

/** Where the outbox writes: the current link while it is open. */
export interface OutboxLink {
  readonly window: number
  write: (message: string, cid: string, action?: OutgoingAction) => void
}

/**
 * The send queue: the only owner of waiting messages, the in-flight window, resends and
 * order. A sender's messages reach the server in `send()` order and are resent from the first
 * unanswered one after a drop or a refusal for now; the server holds later cids behind a
 * refusal (docs/PROTOCOL.md, "Acknowledgements and order"), so they are stored in that order.
 */
export function createOutbox(retry: BackoffOptions) {
  const queue: OutgoingMessage[] = []
  let link: OutboxLink | undefined
  /** Waiting out a refusal for now: nothing is written until it fires. */
  let holdTimer: ReturnType<typeof setTimeout> | undefined
  /** Refusals for now in a row, for the backoff; an acknowledgement resets it. */
  let refusals = 0

  /** Write what waits, in order, keeping at most `window` unanswered. */
  function flush() {
    if (!link || holdTimer) return
    let inFlight = 0
    for (const item of queue) {
      if (inFlight >= link.window) return
      if (!item.inFlight) {
        item.inFlight = true
        link.write(item.message, item.cid, item.action)
      }
      inFlight++
    }
  }

  function unsendAll() {
    for (const item of queue) item.inFlight = false
  }

  function take(cid: string): OutgoingMessage | undefined {
    const index = queue.findIndex(item => item.cid === cid)
    return index < 0 ? undefined : queue.splice(index, 1)[0]
  }

  return {
    /** Queue a message; it goes out when the link has room. */
    push(cid: string, message: string, action?: OutgoingAction) {
      queue.push(action ? { cid, message, action, inFlight: false } : { cid, message, inFlight: false })
      flush()
    },
    /** A link opened: write from the first waiting message. */
    attach(next: OutboxLink) {
      link = next
      unsendAll()
      flush()
    },
    /** The link is gone (dropped, closed, reopened): everything unanswered goes again on the next one. */
    detach() {
      link = undefined
      clearTimeout(holdTimer)
      holdTimer = undefined
      unsendAll()
    },
    /** The server stored it (echo or duplicate answer). True if it was ours and waiting. */
    acknowledged(cid: string): boolean {
      if (!take(cid)) return false
      refusals = 0
      flush()
      return true
    },
    /** Refused for good: no resend. Returns the message when it was waiting here. */
    refused(cid: string): OutgoingMessage | undefined {
      const item = take(cid)
      if (item) flush()
      return item
    },
    /** Refused for now: resend it and everything after it, in order, after a backoff. */
    refusedForNow(cid: string) {
      const index = queue.findIndex(item => item.cid === cid)
      // Already waiting to be resent (a later cid the server held behind the first refusal).
      if (index < 0 || !queue[index]!.inFlight) return
      for (const item of queue.slice(index)) item.inFlight = false
      clearTimeout(holdTimer)
      holdTimer = setTimeout(() => {
        holdTimer = undefined
        flush()
      }, backoffDelay(refusals++, retry))
    },
    /** Remove every waiting message (they are reported elsewhere as undelivered). */
    takeAll(): OutgoingMessage[] {
      clearTimeout(holdTimer)
      holdTimer = undefined
      return queue.splice(0)
    },
    get size() {
      return queue.length
    },
    get items(): readonly OutgoingMessage[] {
      return queue
    },
  }
}

export type Outbox = ReturnType<typeof createOutbox>
