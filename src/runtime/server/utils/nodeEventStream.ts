import type { ServerResponse } from 'node:http'
import type { ChatEventStream } from './httpExchange'

/**
 * An event stream written straight to Node's response: what is queued is Node's own buffer, so a
 * slow reader is measured exactly. `answer` is what the handler returns (it differs by h3 version).
 */
export function nodeEventStream(res: ServerResponse, headers: Record<string, string>, answer: () => unknown): ChatEventStream {
  res.writeHead(200, headers)
  res.socket?.setNoDelay(true)
  return {
    write: (text) => {
      if (!res.writableEnded && !res.destroyed) res.write(text)
    },
    queuedBytes: () => res.writableLength,
    closed: () => res.writableEnded || res.destroyed,
    end: () => res.end(),
    destroy: () => res.destroy(),
    onClose: listener => res.on('close', listener),
    answer,
  }
}
