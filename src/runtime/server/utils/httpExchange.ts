// What the HTTP routes get from the Nitro adapter (./nitroV2.ts, ./nitroV3.ts), the same on both.

/** Why a body was not read: larger than the limit, or not complete within the body timeout. */
export type BodyRefusal = 'too_large' | 'timeout'

/** An open event stream: text in, with what is still queued for the client, so a slow reader can be dropped. */
export interface ChatEventStream {
  /** Queue text (or its bytes) for the client; nothing once the stream closed. */
  write: (text: string | Uint8Array) => void
  /** Bytes written but not yet taken by the client's connection. */
  queuedBytes: () => number
  /** Whether the stream closed (client gone, `end` or `destroy`). */
  closed: () => boolean
  /** Finish the stream after what is queued. */
  end: () => void
  /** Drop the client now, queued bytes and all. */
  destroy: () => void
  /** Called once when the stream closes, whoever closed it. */
  onClose: (listener: () => void) => void
  /** What the handler returns once the stream is set up. */
  answer: () => unknown
}
