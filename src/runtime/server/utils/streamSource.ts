/** What `useChatServer().stream` reads text from: an async iterable, a `ReadableStream`, or an AI SDK `streamText` result. */

/** A source of text chunks: an (async) iterable of strings, a `ReadableStream<string>`, or anything with a `textStream` (the AI SDK's `streamText` result). */
export type ChatStreamSource = AsyncIterable<string> | Iterable<string> | ReadableStream<string> | { textStream: AsyncIterable<string> | ReadableStream<string> }

/** A source, or a function that makes one given the stream's abort signal (pass it on to the model, e.g. `streamText({ abortSignal })`). */
export type ChatStreamSourceInput = ChatStreamSource | ((signal: AbortSignal) => ChatStreamSource | Promise<ChatStreamSource>)

/** The chunks of a source, one by one; `close` ends it early (a generator's `finally` runs, a stream is cancelled). */
export interface ChunkReader {
  next: () => Promise<IteratorResult<unknown>>
  close: () => Promise<void>
}

/** Is `source` one `ChatStreamSource` allows (duck-typed, as `readerOf` reads it; nothing is read)? */
export function isStreamSource(source: unknown): boolean {
  const inner = source && typeof source === 'object' && 'textStream' in source ? (source as { textStream: unknown }).textStream : source
  if (inner === null || inner === undefined || typeof inner === 'string') return false
  if (typeof (inner as ReadableStream).getReader === 'function') return true
  return typeof (inner as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function' || typeof (inner as Iterable<unknown>)[Symbol.iterator] === 'function'
}

/** A reader over any source `ChatStreamSource` allows (duck-typed: the runtime never imports the AI SDK); throws `TypeError` for anything else. */
export function readerOf(source: unknown): ChunkReader {
  const inner = source && typeof source === 'object' && 'textStream' in source ? (source as { textStream: unknown }).textStream : source
  if (inner && typeof (inner as ReadableStream).getReader === 'function') {
    const reader = (inner as ReadableStream<unknown>).getReader()
    return {
      next: () => reader.read() as Promise<IteratorResult<unknown>>,
      close: async () => {
        await reader.cancel().catch(() => {})
      },
    }
  }
  const asyncIterate = (inner as AsyncIterable<unknown> | undefined)?.[Symbol.asyncIterator]
  const iterate = (inner as Iterable<unknown> | undefined)?.[Symbol.iterator]
  if (typeof inner !== 'string' && (typeof asyncIterate === 'function' || typeof iterate === 'function')) {
    const iterator = typeof asyncIterate === 'function' ? asyncIterate.call(inner) : iterate!.call(inner) as Iterator<unknown>
    return {
      next: async () => await iterator.next(),
      close: async () => {
        // Not awaited past a short bound: a generator stuck in an `await` would hold the stream's end.
        await Promise.race([Promise.resolve(iterator.return?.()).catch(() => {}), new Promise(resolve => setTimeout(resolve, 100))])
      },
    }
  }
  throw new TypeError('[nuxt-chat] stream(): the source must be an async iterable of strings, a ReadableStream, or a streamText() result')
}
