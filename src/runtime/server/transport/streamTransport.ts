/**
 * A chat connection written to an SSE event stream (protocol version 2 over SSE, ../utils/sseRooms.ts): its
 * commands come as POSTs, so reading it cannot be paused, and the stream's own keep-alive replaces pings.
 */
import type { ChatEventStream } from '../utils/httpExchange'
import type { ChatTransport } from './chatTransport'
import type { SharedFrame } from './frame'

export class StreamTransport implements ChatTransport {
  declare readonly stream: ChatEventStream

  constructor(stream: ChatEventStream) {
    this.stream = stream
  }

  get writable(): boolean {
    return !this.stream.closed()
  }

  /** Message events keep their `id:` (the message's id in its room): the stream's Last-Event-ID is ignored on version 2. */
  writeFrame(frame: SharedFrame): number {
    this.stream.write(frame.sse)
    return this.stream.queuedBytes()
  }

  get backlog(): number {
    return this.stream.queuedBytes()
  }

  /** Finish the stream after what is queued (an SSE stream has no close code). */
  closeWith(): void {
    this.stream.end()
  }

  drop(): void {
    this.stream.destroy()
  }

  pauseReading(): boolean {
    return false
  }

  resumeReading(): void {}

  sendPing(): boolean {
    return false
  }

  /** Each event is written as it comes (h3's stream). */
  holdOutput(): boolean {
    return false
  }

  releaseOutput(): void {}
}
