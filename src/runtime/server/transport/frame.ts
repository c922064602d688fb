/**
 * The frame encoder: a server-to-client frame made once per broadcast, its bytes encoded once per
 * carrier (WebSocket, SSE) on first use. The chat's core builds these and hands them to a
 * connection's transport (./chatTransport.ts), which writes the framed bytes where it can and the
 * text where it cannot. No transport internals here.
 */

/** A frame made once and written to many connections: the JSON text and its bytes framed for each carrier. */
export interface SharedFrame {
  readonly text: string
  /** A WebSocket text frame. */
  readonly ws: Buffer
  /** An SSE event. */
  readonly sse: Buffer
}

/**
 * Encode a server-to-client WebSocket text frame (RFC 6455 §5.2: FIN, opcode 1, unmasked).
 * Built once per broadcast, then written as-is to every peer.
 */
export function encodeTextFrame(payload: Uint8Array): Buffer {
  const length = payload.length
  const headerLength = length < 126 ? 2 : length < 65536 ? 4 : 10
  const frame = Buffer.allocUnsafe(headerLength + length)
  frame[0] = 0x81
  if (length < 126) {
    frame[1] = length
  }
  else if (length < 65536) {
    frame[1] = 126
    frame.writeUInt16BE(length, 2)
  }
  else {
    frame[1] = 127
    frame.writeUInt32BE(0, 2)
    frame.writeUInt32BE(length, 6)
  }
  frame.set(payload, headerLength)
  return frame
}

/** One frame on its way to a room: serialised once, encoded once per transport on first use. */
export class RoomFrame implements SharedFrame {
  // Plain fields, not #private: bundlers lower those to WeakMap lookups, paid per delivery. Set in the
  // constructor, not as class fields (lowered to helper calls V8 cannot count: out-of-object slots).
  declare readonly text: string
  declare readonly id: number
  declare private wsBytes: Buffer | undefined
  declare private sseBytes: Buffer | undefined
  constructor(text: string, id = 0) {
    this.text = text
    this.id = id
    this.wsBytes = undefined
    this.sseBytes = undefined
  }

  /** The WebSocket frame bytes. */
  get ws(): Buffer {
    return this.wsBytes ??= encodeTextFrame(Buffer.from(this.text))
  }

  /** The SSE event bytes; message frames carry `id:` so EventSource resumes by itself. */
  get sse(): Buffer {
    return this.sseBytes ??= Buffer.from(this.id ? `id: ${this.id}\ndata: ${this.text}\n\n` : `data: ${this.text}\n\n`)
  }
}
