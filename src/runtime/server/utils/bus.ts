import { createHash } from 'node:crypto'
import { resolve } from 'node:path'
import { parseIdText } from '../../shared/protocol'

/** The bus carries room events between instances of the app; one instance needs none. */

/**
 * One room event, by kind. A `frame` is JSON text serialised once by the instance it came from,
 * so receivers forward it without parsing or re-serialising.
 */
export type BusEvent
  /** A stored message or change: its frame, and its number in the room. */
  = | { kind: 'message', room: string, id: number, frame: string }
  /** Messages up to `id` were stored but not all published: catch up from the store. */
    | { kind: 'sync', room: string, id: number }
  /** A join/leave `system` frame, or a `typing` frame, to forward to the room. */
    | { kind: 'system' | 'typing', room: string, frame: string }
  /** An instance's users in the room (a JSON array). */
    | { kind: 'presence', room: string, frame: string }
  /** Please announce your users of the room: every instance answers, with `[]` when it has nobody in it. */
    | { kind: 'presence?', room: string }
  /** A user's read position moved (the `read` frame), or a membership changed (the `member` frame; its `uid` empty: the room's record changed). */
    | { kind: 'read' | 'member', room: string, frame: string }
  /** Close the connections of the user `uid` to the room; or their read position in it was deleted. */
    | { kind: 'disconnect' | 'forget', room: string, uid: string }
  /** A streaming message's `delta` frame, or a stream's news (`open`, `end`, `stop`, `ask`: JSON) (./streams.ts). */
    | { kind: 'delta' | 'stream', room: string, frame: string }

export type BusEventKind = BusEvent['kind']

export interface ChatBus {
  /** Send an event to every other instance (never back to this one); false when the bus is down and it was dropped. */
  publish: (event: BusEvent) => boolean
  /** Called for each event from another instance; `origin` is that instance's id. */
  onEvent: (listener: (event: BusEvent, origin: string) => void) => void
  /** Called when the bus is back after an outage: events may have been missed, in either direction. */
  onRecover: (listener: () => void) => void
  /** Called with the reason each time the bus finds its connection lost (a bus without a connection never calls it). */
  onDown?: (listener: (reason: string) => void) => void
  close: () => Promise<void>
  /** How many other instances listen on the bus now (a newcomer's first presence list waits for their answers). */
  peers?: () => Promise<number>
  /** No other instance can hear this bus (the local one): presence announcements are skipped. */
  readonly alone?: boolean
}

/** A single instance: nothing to carry. */
export function createLocalBus(): ChatBus {
  return {
    alone: true,
    publish: () => true,
    onEvent() {},
    onRecover() {},
    async close() {},
  }
}

const KINDS = new Set<string>(['message', 'system', 'typing', 'presence', 'presence?', 'sync', 'disconnect', 'read', 'forget', 'member', 'delta', 'stream'] satisfies BusEventKind[])

/** Encode an event as one line of header (an id, 0 where the kind has none) and its text (a frame, a user id or nothing), so a frame is never re-escaped. */
export function encodeBusEvent(event: BusEvent, origin: string): string {
  const id = 'id' in event ? event.id : 0
  const text = 'frame' in event ? event.frame : 'uid' in event ? event.uid : ''
  return `${event.kind} ${origin} ${event.room} ${id}\n${text}`
}

/** Decode what `encodeBusEvent` made; `undefined` for anything else on the channel. */
export function decodeBusEvent(data: string): { event: BusEvent, origin: string } | undefined {
  const newline = data.indexOf('\n')
  if (newline < 0) return undefined
  const [kind, origin, room, id, extra] = data.slice(0, newline).split(' ')
  const at = id === undefined ? undefined : parseIdText(id)
  if (!kind || !KINDS.has(kind) || !origin || !room || at === undefined || extra !== undefined) return undefined
  // A message or sync event without a real id would move a room's cursor to nowhere.
  if ((kind === 'message' || kind === 'sync') && at < 1) return undefined
  return { event: eventOf(kind as BusEventKind, room, at, data.slice(newline + 1)), origin }
}

/** The event of a decoded header and text. */
function eventOf(kind: BusEventKind, room: string, id: number, text: string): BusEvent {
  switch (kind) {
    case 'message': return { kind, room, id, frame: text }
    case 'sync': return { kind, room, id }
    case 'presence?': return { kind, room }
    case 'disconnect':
    case 'forget': return { kind, room, uid: text }
    default: return { kind, room, frame: text }
  }
}

/**
 * The bus channel of a deployment: derived from where its rooms are stored, so that apps with
 * different databases never share one on the same Redis, while instances of one app (same
 * database) always do. A relative SQLite path counts from the working directory.
 */
export function deploymentChannel(store: { storage: string, connector?: string, options?: Record<string, unknown> }, cwd: string): string {
  const options: Record<string, unknown> = { ...store.options }
  // Only a file database has a path to resolve (a server database's options may still carry the default `path`).
  if (store.connector && /sqlite|^bun$/.test(store.connector)) {
    options.path = resolve(typeof options.cwd === 'string' ? options.cwd : cwd, typeof options.path === 'string' ? options.path : `.data/${options.name ?? 'db'}.sqlite`)
  }
  // Memory rooms live in one process: the working directory tells two apps apart.
  const where = store.storage === 'memory' || !store.connector ? { memory: cwd } : { connector: store.connector, options: sortedKeys(options) }
  return `nuxt-chat:${createHash('sha256').update(JSON.stringify(where)).digest('base64url').slice(0, 16)}`
}

function sortedKeys(value: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(value).sort(([a], [b]) => a < b ? -1 : 1))
}
