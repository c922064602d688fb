import type { ChatUser } from '../../shared/protocol'
import type { ChatRuntimeConfig } from '../../types'
import { chatMetrics, connectionCount } from '../utils/chatMetrics'
import { connectorOptions } from '../utils/databaseConfig'

/** Option, query and libpq keys whose values are secrets (`password`, `apiKey`, `basicAuth`, `ssl.pfx`, `dsn`…). */
const SECRET_NAME = /pass|secret|token|credential|private|auth|pfx|dsn|key$/i
/** Keys that look secret but hold a setting worth seeing. */
const NOT_SECRET = new Set(['rejectunauthorized'])
const isSecretKey = (key: string) => SECRET_NAME.test(key) && !NOT_SECRET.has(key.toLowerCase())

/** A connection URL with its password (and any secret-looking query value) replaced by `***`. */
export function maskUrl(url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.password) parsed.password = '***'
    for (const key of [...parsed.searchParams.keys()]) {
      if (isSecretKey(key)) parsed.searchParams.set(key, '***')
    }
    return parsed.toString()
  }
  catch {
    // Not a URL: keep the scheme-like head only, in case it embeds credentials.
    return url.replace(/:\/\/.*@/, '://***@')
  }
}

/** `key=value` pairs (libpq allows spaces around `=`, and quoted values) in a string that is not a URL. */
const PAIR = /\b(\w+)(\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&;']+)/g
const isUrl = (value: string) => /^[a-z][\w+.-]*:\/\//i.test(value)

/** An option's value without its secrets, however deep (e.g. `ssl: { key }`). */
function withoutSecrets(value: unknown): unknown {
  if (typeof value === 'string') return isUrl(value) ? maskUrl(value) : value.replace(PAIR, (pair, key: string, equals: string) => isSecretKey(key) ? `${key}${equals}***` : pair)
  if (Array.isArray(value)) return value.map(withoutSecrets)
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, isSecretKey(key) ? '***' : withoutSecrets(inner)]))
  return value
}

/** Where the rooms are stored, fit to show: a file path, or a server URL without secrets. */
export function describeStore(config: Pick<ChatRuntimeConfig, 'storage' | 'database'>): { backend: string, where: string } {
  if (config.storage === 'memory' || !config.database) return { backend: 'memory', where: 'process memory' }
  const options = connectorOptions(config.database)
  const shown = Object.entries(options).map(([key, value]) => {
    if (isSecretKey(key)) return `${key}=***`
    const safe = withoutSecrets(value)
    return `${key}=${typeof safe === 'string' && isUrl(safe) ? safe : JSON.stringify(safe)}`
  })
  return { backend: config.database.connector, where: shown.join(', ') || '(connector defaults)' }
}

/** Who is online in a room, on every instance (the hub's `presence`). */
type PresenceOf = (room: string) => Promise<ChatUser[]>

/**
 * What the DevTools tab shows: rooms with their connections, who is online here and who only on
 * other instances (from `presenceOf`), store, bus, counters.
 */
export async function devtoolsSnapshot(config: ChatRuntimeConfig, presenceOf?: PresenceOf) {
  const { appends, bus, store } = chatMetrics
  const rooms = await Promise.all([...chatMetrics.members].map(async ([name, members]) => {
    const online = new Map<string, { id: string, name: string, guest: boolean, connections: number }>()
    for (const member of members) {
      const seen = online.get(member.user.id)
      if (seen) seen.connections++
      else online.set(member.user.id, { id: member.user.id, name: member.user.name, guest: Boolean(member.user.guest), connections: 1 })
    }
    // The tab must keep updating even if a presence question goes unanswered.
    const everyone = presenceOf ? await presenceOf(name).catch(() => []) : []
    const elsewhere = everyone.filter(user => !online.has(user.id)).map(user => ({ id: user.id, name: user.name, guest: Boolean(user.guest) }))
    return { name, connections: members.size, online: [...online.values()], elsewhere }
  }))
  rooms.sort((a, b) => a.name < b.name ? -1 : 1)
  return {
    rooms,
    store: {
      ...describeStore(config),
      up: !store.lastErrorAt || store.lastOkAt >= store.lastErrorAt,
      lastError: store.lastError,
      lastErrorAt: store.lastErrorAt,
      appends: appends.count,
      meanAppendMs: appends.count ? appends.seconds / appends.count * 1000 : 0,
    },
    bus: { kind: bus.kind, where: config.redisUrl ? maskUrl(config.redisUrl) : 'this process', up: bus.up, lastError: bus.lastError, lastErrorAt: bus.lastErrorAt },
    counters: {
      connections: connectionCount(),
      messagesStored: chatMetrics.messagesStored,
      bytesStored: chatMetrics.bytesStored,
      slowReaderDrops: chatMetrics.slowReaderDrops,
      rateLimited: chatMetrics.refusals.get('rate_limited') ?? 0,
      refusals: Object.fromEntries(chatMetrics.refusals),
    },
  }
}

export type DevtoolsSnapshot = Awaited<ReturnType<typeof devtoolsSnapshot>>
