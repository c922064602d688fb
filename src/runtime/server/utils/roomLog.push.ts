import type { Database } from 'db0'

/** Web Push's part of the store (docs/PROTOCOL.md, "Notifications"): subscriptions and muted rooms per person. */

/** A browser's push subscription, as kept. */
export interface PushSubscriptionRecord {
  uid: string
  endpoint: string
  /** The browser's P-256 public key, base64url. */
  p256dh: string
  /** The browser's auth secret, base64url. */
  auth: string
  createdAt: number
}

/** The store's side of Web Push (part of `RoomLog`). */
export interface PushLog {
  /** Keep a subscription for its `uid` (an endpoint held by anyone moves to them); then at most `max` of theirs, the oldest going first. */
  pushSubscribe: (subscription: PushSubscriptionRecord, max: number) => Promise<void>
  /** Delete `uid`'s subscription of `endpoint`; true when there was one. */
  pushUnsubscribe: (uid: string, endpoint: string) => Promise<boolean>
  /** Delete a subscription whoever holds it (the push service said it is gone). */
  pushForget: (endpoint: string) => Promise<void>
  /** A person's subscriptions, oldest first. */
  pushSubscriptions: (uid: string) => Promise<PushSubscriptionRecord[]>
  /** Mute (or unmute) a room's notifications for `uid`; false when muting would pass `max` muted rooms. */
  pushMute: (uid: string, room: string, muted: boolean, max: number) => Promise<boolean>
  /** The rooms `uid` muted, at most `limit`. */
  pushMutedRooms: (uid: string, limit: number) => Promise<string[]>
}

type Query = <T>(method: 'all' | 'get' | 'run', sql: string, ...params: unknown[]) => Promise<T>

/** Web Push's tables: new ones, so a database made by an older version opens as it was. */
export async function createPushTables(db: Database) {
  await db.exec(`CREATE TABLE IF NOT EXISTS chat_push_subscriptions (
    endpoint TEXT NOT NULL PRIMARY KEY,
    uid TEXT NOT NULL,
    p256dh TEXT NOT NULL,
    auth TEXT NOT NULL,
    created_at BIGINT NOT NULL
  )`)
  await db.exec('CREATE INDEX IF NOT EXISTS chat_push_subscriptions_user ON chat_push_subscriptions (uid, created_at)')
  await db.exec(`CREATE TABLE IF NOT EXISTS chat_push_mutes (
    uid TEXT NOT NULL,
    room TEXT NOT NULL,
    PRIMARY KEY (uid, room)
  )`)
}

interface SubscriptionRow { endpoint: string, uid: string, p256dh: string, auth: string, created_at: number | string }

const toRecord = (row: SubscriptionRow): PushSubscriptionRecord => ({ uid: row.uid, endpoint: row.endpoint, p256dh: row.p256dh, auth: row.auth, createdAt: Number(row.created_at) })

/** `PushLog` over a db0 database (SQLite, PostgreSQL), by the room log's `query`. */
export function createDb0PushLog(query: Query): PushLog {
  return {
    async pushSubscribe(subscription, max) {
      await query('run', 'INSERT INTO chat_push_subscriptions (endpoint, uid, p256dh, auth, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (endpoint) DO UPDATE SET uid = excluded.uid, p256dh = excluded.p256dh, auth = excluded.auth, created_at = excluded.created_at', subscription.endpoint, subscription.uid, subscription.p256dh, subscription.auth, subscription.createdAt)
      // The newest `max` stay (ties: by endpoint, so both dialects keep the same ones).
      await query('run', 'DELETE FROM chat_push_subscriptions WHERE uid = ? AND endpoint NOT IN (SELECT endpoint FROM chat_push_subscriptions WHERE uid = ? ORDER BY created_at DESC, endpoint DESC LIMIT ?)', subscription.uid, subscription.uid, max)
    },
    async pushUnsubscribe(uid, endpoint) {
      const rows = await query<unknown[]>('all', 'DELETE FROM chat_push_subscriptions WHERE uid = ? AND endpoint = ? RETURNING endpoint', uid, endpoint)
      return rows.length > 0
    },
    async pushForget(endpoint) {
      await query('run', 'DELETE FROM chat_push_subscriptions WHERE endpoint = ?', endpoint)
    },
    async pushSubscriptions(uid) {
      const rows = await query<SubscriptionRow[]>('all', 'SELECT endpoint, uid, p256dh, auth, created_at FROM chat_push_subscriptions WHERE uid = ? ORDER BY created_at, endpoint', uid)
      return rows.map(toRecord)
    },
    async pushMute(uid, room, muted, max) {
      if (!muted) {
        await query('run', 'DELETE FROM chat_push_mutes WHERE uid = ? AND room = ?', uid, room)
        return true
      }
      const row = await query<{ count: number | string } | undefined>('get', 'SELECT COUNT(*) AS count FROM chat_push_mutes WHERE uid = ? AND room <> ?', uid, room)
      if (Number(row?.count ?? 0) >= max) return false
      await query('run', 'INSERT INTO chat_push_mutes (uid, room) VALUES (?, ?) ON CONFLICT (uid, room) DO NOTHING', uid, room)
      return true
    },
    async pushMutedRooms(uid, limit) {
      const rows = await query<{ room: string }[]>('all', 'SELECT room FROM chat_push_mutes WHERE uid = ? ORDER BY room LIMIT ?', uid, limit)
      return rows.map(row => row.room)
    },
  }
}

/** `PushLog` in process memory (`storage: 'memory'`). */
export function createMemoryPushLog(): PushLog & { clearPush: () => void } {
  const byEndpoint = new Map<string, PushSubscriptionRecord>()
  /** uid → their endpoints: a person's subscriptions without a look at everyone's. */
  const byUser = new Map<string, Set<string>>()
  const mutes = new Map<string, Set<string>>()
  const subscriptionsOf = (uid: string) => [...byUser.get(uid) ?? []].map(endpoint => byEndpoint.get(endpoint)!)
    .sort((a, b) => a.createdAt - b.createdAt || (a.endpoint < b.endpoint ? -1 : 1))
  const remove = (endpoint: string) => {
    const held = byEndpoint.get(endpoint)
    if (!held) return false
    byEndpoint.delete(endpoint)
    const endpoints = byUser.get(held.uid)!
    endpoints.delete(endpoint)
    if (!endpoints.size) byUser.delete(held.uid)
    return true
  }
  return {
    async pushSubscribe(subscription, max) {
      remove(subscription.endpoint)
      byEndpoint.set(subscription.endpoint, { ...subscription })
      const endpoints = byUser.get(subscription.uid) ?? new Set<string>()
      byUser.set(subscription.uid, endpoints.add(subscription.endpoint))
      const held = subscriptionsOf(subscription.uid)
      for (const record of held.slice(0, Math.max(0, held.length - max))) remove(record.endpoint)
    },
    async pushUnsubscribe(uid, endpoint) {
      return byEndpoint.get(endpoint)?.uid === uid && remove(endpoint)
    },
    async pushForget(endpoint) {
      remove(endpoint)
    },
    async pushSubscriptions(uid) {
      return subscriptionsOf(uid).map(record => ({ ...record }))
    },
    async pushMute(uid, room, muted, max) {
      const rooms = mutes.get(uid) ?? new Set<string>()
      if (!muted) {
        rooms.delete(room)
        return true
      }
      if (!rooms.has(room) && rooms.size >= max) return false
      mutes.set(uid, rooms.add(room))
      return true
    },
    async pushMutedRooms(uid, limit) {
      return [...mutes.get(uid) ?? []].sort().slice(0, limit)
    },
    clearPush() {
      byEndpoint.clear()
      byUser.clear()
      mutes.clear()
    },
  }
}
