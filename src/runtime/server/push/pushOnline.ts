import type { ConsolaInstance } from 'consola'
import { Redis } from 'ioredis'
import { connectedPeople, lastLeftAt, openConnectionsOf } from '../utils/connectionCaps'

/** Is a signed-in person connected anywhere (docs/PROTOCOL.md, "Notifications", "Away")? */
export interface OnlineCheck {
  /** Connected now, or (with `since`) at any time from `since` (epoch ms) on: a message stored then reached them. */
  isOnline: (uid: string, since?: number) => Promise<boolean>
  close: () => Promise<void>
  /** The Redis connection (with `redisUrl`): batches are kept there too (./pushBatches.ts). */
  redis?: Redis
  /** Say a Redis failure once (until it answers again). */
  failed: (error: unknown) => void
}

export interface OnlineCheckOptions {
  /** Redis of the deployment's bus; empty: this instance is the only one. */
  redisUrl: string
  /** The bus channel: the keys' prefix, so deployments sharing a Redis stay apart. */
  channel: string
  /** How often this instance refreshes its people's keys (`presenceInterval`); a key lives three. */
  interval: number
  logger: ConsolaInstance
}

/** Connected to this instance now, or since `since`. */
function connectedHere(uid: string, since: number | undefined): boolean {
  return openConnectionsOf(uid) > 0 || (since !== undefined && (lastLeftAt(uid) ?? 0) >= since)
}

/**
 * This instance counts its people's connections (./connectionCaps.ts); with Redis, it also keeps a
 * key per person connected here, refreshed every `interval` and expiring after three, and asks
 * for the key of a person it has no connection of: one EXISTS per notification due, no bus traffic.
 */
export function createOnlineCheck({ redisUrl, channel, interval, logger }: OnlineCheckOptions): OnlineCheck {
  if (!redisUrl) {
    return { isOnline: async (uid, since) => connectedHere(uid, since), close: async () => {}, failed: () => {} }
  }
  const redis = new Redis(redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: false, retryStrategy: (times: number) => Math.min(times * 100, 1000) })
  let warned = false
  const failed = (error: unknown) => {
    if (warned) return
    warned = true
    logger.warn('[nuxt-chat] push: Redis does not answer; people connected only to other instances may get notifications, and each instance batches apart', error instanceof Error ? error.message : error)
  }
  redis.on('error', failed)
  redis.on('ready', () => warned = false)
  const keyOf = (uid: string) => `${channel}:online:${uid}`
  const refresh = () => {
    if (redis.status !== 'ready') return
    const pipeline = redis.pipeline()
    for (const uid of connectedPeople()) pipeline.set(keyOf(uid), '1', 'PX', interval * 3)
    if (pipeline.length) pipeline.exec().catch(failed)
  }
  const timer = setInterval(refresh, interval)
  timer.unref?.()
  redis.on('ready', refresh)
  return {
    redis,
    failed,
    async isOnline(uid, since) {
      if (connectedHere(uid, since)) return true
      try {
        return await redis.exists(keyOf(uid)) > 0
      }
      catch (error) {
        // Not known: notified rather than missed.
        failed(error)
        return false
      }
    },
    async close() {
      clearInterval(timer)
      redis.disconnect()
    },
  }
}
