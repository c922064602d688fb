import type { ChatRuntimeConfig } from '../../types'
import { chatMetrics, connectionCount } from '../utils/chatMetrics'

/** Option keys whose values are secrets. */
const SECRET_KEY = /pass|secret|token|key|auth/i

/** A connection URL with its password (and any secret-looking query value) replaced by `***`. */
export function maskUrl(url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.password) parsed.password = '***'
    for (const key of [...parsed.searchParams.keys()]) {
      if (SECRET_KEY.test(key)) parsed.searchParams.set(key, '***')
    }
    return parsed.toString()
  }
  catch {
    // Not a URL: keep the scheme-like head only, in case it embeds credentials.
    return url.replace(/:\/\/.*@/, '://***@')
  }
}

/** Where the rooms are stored, fit to show: a file path, or a server URL without secrets. */
export function describeStore(config: Pick<ChatRuntimeConfig, 'storage' | 'database'>): { backend: string, where: string } {
  if (config.storage === 'memory' || !config.database) return { backend: 'memory', where: 'process memory' }
  const options = config.database.options ?? {}
  const shown = Object.entries(options).map(([key, value]) => {
    if (SECRET_KEY.test(key)) return `${key}=***`
    return `${key}=${typeof value === 'string' && /^[a-z][\w+.-]*:\/\//i.test(value) ? maskUrl(value) : JSON.stringify(value)}`
  })
  return { backend: config.database.connector, where: shown.join(', ') || '(connector defaults)' }
}

/** What the DevTools tab shows: rooms with their connections and who is online, store, bus, counters. */
export function devtoolsSnapshot(config: ChatRuntimeConfig) {
  const { appends, bus, store } = chatMetrics
  const rooms = [...chatMetrics.members].map(([name, members]) => {
    const online = new Map<string, { id: string, name: string, guest: boolean, connections: number }>()
    for (const member of members) {
      const seen = online.get(member.user.id)
      if (seen) seen.connections++
      else online.set(member.user.id, { id: member.user.id, name: member.user.name, guest: Boolean(member.user.guest), connections: 1 })
    }
    return { name, connections: members.size, online: [...online.values()] }
  }).sort((a, b) => a.name < b.name ? -1 : 1)
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

export type DevtoolsSnapshot = ReturnType<typeof devtoolsSnapshot>
