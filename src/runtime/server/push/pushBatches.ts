import type { Redis } from 'ioredis'
import type { ChatMessageFrame } from '../../shared/protocol'

/** Most frames one batch keeps: the newest (a local batch still counts every message). */
export const MAX_BATCH_FRAMES = 50

/** What one away person is to be told of, gathered within the window (docs/PROTOCOL.md, "Notifications", "Batching"). */
export interface PushBatches {
  /** Add a message to `uid`'s batch; true when this call opened it (the caller flushes it after the window). */
  add: (uid: string, frame: ChatMessageFrame) => Promise<boolean>
  /** Take `uid`'s batch, emptying it: its frames (oldest first, each message once) and how many messages it held. */
  take: (uid: string) => Promise<{ frames: ChatMessageFrame[], count: number }>
  clear: () => void
  /** Is a batch of `uid` in this instance's memory (no Redis, or Redis failed as a message was added)? Only this instance can send it. */
  holds: (uid: string) => boolean
  /** Shared batches only: claim those whose owner is gone (its key ended, or it handed them over); the caller flushes them. */
  claimOrphans?: () => Promise<string[]>
  /** Shared batches only: hand over the batches this instance owns (it stops), for another instance to claim at once. */
  release?: (uids: string[]) => Promise<void>
}

/** Each message once, by room and id, in order. */
function distinct(frames: ChatMessageFrame[]): ChatMessageFrame[] {
  const seen = new Set<string>()
  return frames.filter((frame) => {
    const key = `${frame.room}\n${frame.id}`
    return !seen.has(key) && seen.add(key)
  })
}

/** Batches in this instance's memory. */
export function createLocalBatches(): PushBatches {
  const batches = new Map<string, { frames: ChatMessageFrame[], keys: Set<string>, count: number }>()
  return {
    async add(uid, frame) {
      const batch = batches.get(uid)
      const opened = !batch
      const held = batch ?? { frames: [], keys: new Set<string>(), count: 0 }
      if (opened) batches.set(uid, held)
      const key = `${frame.room}\n${frame.id}`
      if (held.keys.has(key)) return opened
      held.keys.add(key)
      held.count++
      held.frames.push(frame)
      if (held.frames.length > MAX_BATCH_FRAMES) held.frames.shift()
      return opened
    },
    async take(uid) {
      const batch = batches.get(uid)
      batches.delete(uid)
      return batch ? { frames: batch.frames, count: batch.count } : { frames: [], count: 0 }
    },
    clear: () => batches.clear(),
    holds: uid => batches.has(uid),
  }
}

/** Orphaned batches one sweep claims at most. */
const MAX_CLAIMS = 100

/** Give up the owner key only if this instance holds it, and make the batch due now. */
const RELEASE_SCRIPT = `if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) redis.call('ZADD', KEYS[2], 'XX', 0, ARGV[2]) end`

/**
 * Batches shared by every instance in Redis: a list of frames per person, an owner key, and a
 * sorted set of open batches by when their owner key ends. The instance whose `SET NX` made the
 * owner key flushes the batch after the window, taking the list, both keys and its entry in one
 * transaction; a message added after that opens the next batch. A batch past its due time whose
 * owner key is gone (the owner died, or stopped and released it) is claimed with the same
 * `SET NX` by the next instance's sweep. When Redis fails, `local` batches.
 */
export function createRedisBatches(redis: Redis, { channel, instanceId, window, local, failed }: { channel: string, instanceId: string, window: number, local: PushBatches, failed: (error: unknown) => void }): PushBatches {
  // A person's batch keeps at most this many frames (the newest); its count is of those.
  const MAX_SHARED = 200
  const keysOf = (uid: string) => [`${channel}:push:queue:${uid}`, `${channel}:push:owner:${uid}`] as const
  const due = `${channel}:push:due`
  // The owner flushes after `window`: a key that outlives that by far means its owner is gone.
  const ownerTtl = window * 2 + 5000
  return {
    async add(uid, frame) {
      const [queue, owner] = keysOf(uid)
      try {
        const results = await redis.multi().rpush(queue, JSON.stringify(frame)).ltrim(queue, -MAX_SHARED, -1).pexpire(queue, window * 4 + 60_000).set(owner, instanceId, 'PX', ownerTtl, 'NX').zadd(due, 'NX', Date.now() + ownerTtl, uid).exec()
        if (!results || results.some(([error]) => error)) throw results?.find(([error]) => error)?.[0] ?? new Error('transaction aborted')
        return results[3]![1] === 'OK'
      }
      catch (error) {
        failed(error)
        return local.add(uid, frame)
      }
    },
    async take(uid) {
      const [queue, owner] = keysOf(uid)
      const mine = await local.take(uid)
      try {
        const results = await redis.multi().lrange(queue, 0, -1).del(queue).del(owner).zrem(due, uid).exec()
        const texts = (results?.[0]?.[1] ?? []) as string[]
        const shared = texts.flatMap((text) => {
          try {
            return [JSON.parse(text) as ChatMessageFrame]
          }
          catch {
            return []
          }
        })
        const frames = distinct([...shared, ...mine.frames].sort((a, b) => a.ts - b.ts))
        return { frames: frames.slice(-MAX_BATCH_FRAMES), count: Math.max(frames.length, mine.count) }
      }
      catch (error) {
        failed(error)
        return mine
      }
    },
    clear: () => local.clear(),
    holds: uid => local.holds(uid),
    async claimOrphans() {
      const uids = await redis.zrangebyscore(due, '-inf', Date.now(), 'LIMIT', 0, MAX_CLAIMS)
      if (!uids.length) return []
      const pipeline = redis.pipeline()
      for (const uid of uids) pipeline.set(keysOf(uid)[1], instanceId, 'PX', ownerTtl, 'NX')
      const results = await pipeline.exec()
      return uids.filter((_, index) => results?.[index]?.[1] === 'OK')
    },
    async release(uids) {
      if (!uids.length) return
      const pipeline = redis.pipeline()
      for (const uid of uids) pipeline.eval(RELEASE_SCRIPT, 2, keysOf(uid)[1], due, instanceId, uid)
      await pipeline.exec()
    },
  }
}
