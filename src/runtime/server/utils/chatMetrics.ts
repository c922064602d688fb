import type { ChatErrorFrame } from '../../shared/protocol'
import type { ChatBus } from './bus'
import type { ChatHub, Member } from './hub'
import { limitRefusals } from './chatLimits'
import { incomingSocketStats } from './incomingSockets'
import { RoomLogInputError, type RoomLog } from './roomLog'
import type { SendInput } from './sendPipeline'
import { transportStats } from '../transport/internals'

/** Upper bounds (seconds) of the store-latency histogram's buckets. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]

/** What this instance counted since it started; read by the metrics route and the DevTools tab. */
export const chatMetrics = {
  /** Open connections (WebSocket and SSE) per room. */
  members: new Map<string, Set<Member>>(),
  /** Messages stored through this instance (new ones, not repeated cids). */
  messagesStored: 0,
  /** Their text, in UTF-8 bytes. */
  bytesStored: 0,
  /** Repeated cids answered with the stored message. */
  duplicates: 0,
  /** Sends refused, by error code (`rate_limited`, `bad_request`, `rejected`, `unavailable`, …). */
  refusals: new Map<ChatErrorFrame['code'], number>(),
  /** Connections closed because their unsent output passed `maxBufferedBytes`. */
  slowReaderDrops: 0,
  /** Store appends: count, total seconds, failures, and how many took at most each bucket's bound. */
  appends: { count: 0, seconds: 0, failures: 0, buckets: LATENCY_BUCKETS.map(() => 0) },
  /** The bus: `local` (one instance) or `redis`; whether its connection is up; its last failure (message and time). */
  bus: { kind: 'local' as 'local' | 'redis', up: true, lastError: '', lastErrorAt: 0 },
  /** The store's last success and last failure (message and time), for the DevTools tab. */
  store: { lastOkAt: 0, lastError: '', lastErrorAt: 0 },
}

/** Called with every room event this instance sees (the DevTools feed listens). */
export type ChatEventListener = (room: string, event: { kind: 'message' | 'join' | 'leave' | 'refused', text: string }) => void
const eventListeners = new Set<ChatEventListener>()

/** Listen to the room events this instance sees; returns the function that stops listening. */
export function onChatEvent(listener: ChatEventListener): () => void {
  eventListeners.add(listener)
  return () => eventListeners.delete(listener)
}

function emit(room: string, kind: Parameters<ChatEventListener>[1]['kind'], text: string) {
  for (const listener of eventListeners) listener(room, { kind, text })
}

/** Count the time and failures of every append to `store`. */
export function withStoreMetrics(store: RoomLog): RoomLog {
  const { appends } = chatMetrics
  return {
    ...store,
    async append(input) {
      const started = performance.now()
      try {
        const result = await store.append(input)
        chatMetrics.store.lastOkAt = Date.now()
        return result
      }
      catch (error) {
        // A value the store refused is the sender's fault, not the store's.
        if (error instanceof RoomLogInputError) throw error
        appends.failures++
        chatMetrics.store.lastError = error instanceof Error ? error.message : String(error)
        chatMetrics.store.lastErrorAt = Date.now()
        throw error
      }
      finally {
        const seconds = (performance.now() - started) / 1000
        appends.count++
        appends.seconds += seconds
        LATENCY_BUCKETS.forEach((bound, index) => {
          if (seconds <= bound) appends.buckets[index]!++
        })
      }
    },
  }
}

/** Follow the bus's state: down when its connection is lost or a publish is dropped, up again when it recovers. */
export function withBusMetrics(bus: ChatBus, kind: 'local' | 'redis'): ChatBus {
  const state = chatMetrics.bus
  state.kind = kind
  // A Redis bus is up only once it connected (its first connect counts as a recovery).
  state.up = kind === 'local'
  const down = (reason: string) => {
    state.up = false
    state.lastError = reason
    state.lastErrorAt = Date.now()
  }
  bus.onRecover(() => {
    state.up = true
  })
  bus.onDown?.(down)
  bus.onEvent((event) => {
    state.up = true
    if (event.kind === 'message') emit(event.room, 'message', event.frame)
  })
  return {
    ...bus,
    publish(event) {
      const sent = bus.publish(event)
      if (!sent && state.up) down('an event was dropped: the bus is down')
      state.up = sent
      return sent
    },
  }
}

/** Count the hub's connections per room, stored messages and refusals, and tell the listeners. */
export function withHubMetrics(hub: ChatHub): ChatHub {
  const { members, refusals } = chatMetrics
  return {
    ...hub,
    async join(...args: Parameters<ChatHub['join']>) {
      const [room, member] = args
      let inRoom = members.get(room)
      if (!inRoom) members.set(room, inRoom = new Set())
      inRoom.add(member)
      emit(room, 'join', member.user.name)
      // Every argument passed on: one added to the hub's `join` must not be dropped here.
      return hub.join(...args)
    },
    leave(room: string, member: Member) {
      const inRoom = members.get(room)
      if (inRoom?.delete(member)) emit(room, 'leave', member.user.name)
      if (inRoom && !inRoom.size) members.delete(room)
      return hub.leave(room, member)
    },
    async send(input: SendInput) {
      const result = await hub.send(input)
      if (result.error) {
        refusals.set(result.error.code, (refusals.get(result.error.code) ?? 0) + 1)
        emit(input.room, 'refused', `${result.error.code}: ${result.error.message}`)
      }
      else if (result.duplicate) {
        chatMetrics.duplicates++
      }
      else if (result.frame) {
        chatMetrics.messagesStored++
        chatMetrics.bytesStored += Buffer.byteLength(result.frame.message)
        // Serialised only for a listener (the DevTools feed), never on the plain send path.
        if (eventListeners.size) emit(input.room, 'message', JSON.stringify(result.frame))
      }
      return result
    },
  }
}

/** Count one connection closed as a slow reader. */
export function countSlowReaderDrop(): void {
  chatMetrics.slowReaderDrops++
}

/** Open connections in a room on this instance (a version 2 connection in several rooms counts once). */
export function connectionCount(): number {
  let count = 0
  let multiRoom: Set<object> | undefined
  for (const inRoom of chatMetrics.members.values()) {
    for (const member of inRoom) {
      // A version 2 room subscription (wsRooms.ts): its connection is what is open.
      const connection = (member as { connection?: object }).connection
      if (!connection) count++
      else if (!(multiRoom ??= new Set()).has(connection)) multiRoom.add(connection)
    }
  }
  return count + (multiRoom?.size ?? 0)
}

/** Every metric in the Prometheus text exposition format (version 0.0.4). */
export function renderPrometheus(): string {
  const lines: string[] = []
  const metric = (name: string, type: 'counter' | 'gauge' | 'histogram', help: string, samples: [labels: string, value: number][]) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
    for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`)
  }
  const { appends, bus } = chatMetrics
  metric('nuxt_chat_connections', 'gauge', 'Open WebSocket and SSE connections on this instance.', [['', connectionCount()]])
  metric('nuxt_chat_rooms', 'gauge', 'Rooms with at least one connection on this instance.', [['', chatMetrics.members.size]])
  metric('nuxt_chat_messages_stored_total', 'counter', 'Messages stored through this instance.', [['', chatMetrics.messagesStored]])
  metric('nuxt_chat_message_bytes_stored_total', 'counter', 'UTF-8 bytes of the messages stored through this instance.', [['', chatMetrics.bytesStored]])
  metric('nuxt_chat_duplicates_total', 'counter', 'Repeated cids answered with the stored message.', [['', chatMetrics.duplicates]])
  metric('nuxt_chat_refusals_total', 'counter', 'Messages refused, by error code.', [...chatMetrics.refusals].map(([code, count]) => [`{code="${code}"}`, count]))
  metric('nuxt_chat_rate_limited_total', 'counter', 'Requests refused by a limit, by limit, scope (person or address) and who (guest or signed_in): scope="address",who="signed_in" means many signed-in people share an address.', [...limitRefusals].map(([key, count]) => {
    const [limit, scope, who] = key.split('|')
    return [`{limit="${limit}",scope="${scope}",who="${who}"}`, count]
  }))
  metric('nuxt_chat_header_timeouts_total', 'counter', 'Sockets closed because their request headers did not arrive within headersTimeout.', [['', incomingSocketStats.headerTimeouts]])
  metric('nuxt_chat_refused_before_headers_total', 'counter', 'Sockets answered 429 on arrival: their address had maxConnectionsPerIp guest and pending connections.', [['', incomingSocketStats.refusedBeforeHeaders]])
  metric('nuxt_chat_slow_reader_drops_total', 'counter', 'Connections closed because their unsent output passed maxBufferedBytes.', [['', chatMetrics.slowReaderDrops]])
  metric('nuxt_chat_store_append_failures_total', 'counter', 'Store appends that failed.', [['', appends.failures]])
  metric('nuxt_chat_store_append_seconds', 'histogram', 'Time to store one message.', [
    ...LATENCY_BUCKETS.map((bound, index): [string, number] => [`_bucket{le="${bound}"}`, appends.buckets[index]!]),
    ['_bucket{le="+Inf"}', appends.count],
    ['_sum', appends.seconds],
    ['_count', appends.count],
  ])
  metric('nuxt_chat_bus_up', 'gauge', 'Whether the bus between instances is up (1) or down (0); always 1 for a single instance.', [[`{bus="${bus.kind}"}`, bus.up ? 1 : 0]])
  metric('nuxt_chat_ws_writes_total', 'counter', 'WebSocket frames written, by path (fast: straight to the socket; public: through crossws).', [['{path="fast"}', transportStats.fastWrites], ['{path="public"}', transportStats.publicWrites]])
  metric('nuxt_chat_ws_flushes_total', 'counter', 'Fast-path writes that left for the kernel (the frames a socket got in one task go out together).', [['', transportStats.flushes]])
  metric('nuxt_chat_ws_lean_connections_total', 'counter', 'Chat connections served on their ws socket without a crossws Peer (Nitro 2).', [['', transportStats.leanConnections]])
  metric('nuxt_chat_ws_untracked_from_shutdown_total', 'counter', 'Of those, sockets taken out of Nitro 2\'s graceful-shutdown table (the chat closes them with 1001 itself).', [['', transportStats.untrackedFromShutdown]])
  metric('nuxt_chat_ws_fallbacks', 'gauge', 'Why a WebSocket fast path is not available (1 per reason; none when every fast path is taken).', transportStats.fallbacks.map((reason): [string, number] => [`{reason="${reason.replace(/[\\"\n]/g, ' ')}"}`, 1]))
  return `${lines.join('\n')}\n`
}
