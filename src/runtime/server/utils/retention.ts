import type { ConsolaInstance } from 'consola'
import type { ReadPosition, RetentionPolicy, RoomLog } from './roomLog'

/** Retention settings: the policy of every room, and how often it is applied. */
export interface RetentionSchedule extends RetentionPolicy {
  /** Milliseconds between two passes over all rooms (0: never). */
  interval: number
}

// Small steps with a turn of the event loop between them: a pass never holds the database (or the loop) for long.
const ROOMS_PER_PAGE = 100
// 100 rows: ~1-2 ms of node:sqlite per step (500: 2-5 ms, p99 of the loop's gaps over a 100,000-row backlog 2.5-4.5 ms against 1.6-2.5).
const ROWS_PER_STEP = 100

/**
 * Apply retention to every room of `log` on a timer, quiet rooms included, a few hundred
 * rows at a time; read positions it deletes are handed to `onReadsPruned`. Returns the same log, whose `close` stops the timer (and waits for a pass
 * under way) before closing the store.
 */
export function withRetention(log: RoomLog, schedule: RetentionSchedule, logger: ConsolaInstance, onReadsPruned: (positions: ReadPosition[]) => void = () => {}): RoomLog {
  const policy: RetentionPolicy = { max: schedule.max, maxAge: schedule.maxAge }
  if (!(schedule.interval > 0) || (!(policy.max > 0) && !(policy.maxAge > 0))) return log
  let timer: ReturnType<typeof setTimeout> | undefined
  let running: Promise<void> | undefined
  let stopped = false
  let failing = false

  async function pass() {
    await pruneRooms()
    // Mute-only rows whose mute ended keep nothing: no membership, no mute.
    while (!stopped && await log.pruneEndedMutes(Date.now(), ROWS_PER_STEP) >= ROWS_PER_STEP) await nextTurn()
    // Read positions of rooms retention left with no message within `maxAge` (or none): nobody can be behind in them.
    while (policy.maxAge > 0 && !stopped) {
      const pruned = await log.pruneReads(policy.maxAge, ROWS_PER_STEP)
      if (pruned.length) onReadsPruned(pruned)
      if (pruned.length < ROWS_PER_STEP) return
      await nextTurn()
    }
  }

  async function pruneRooms() {
    let after: string | undefined
    for (;;) {
      const rooms = await log.rooms(after, ROOMS_PER_PAGE)
      for (const room of rooms) {
        while (!stopped && await log.prune(room, policy, ROWS_PER_STEP) >= ROWS_PER_STEP) await nextTurn()
        if (stopped) return
      }
      if (rooms.length < ROOMS_PER_PAGE) return
      after = rooms.at(-1)
      await nextTurn()
    }
  }

  const next = () => {
    if (stopped) return
    timer = setTimeout(() => {
      running = pass().then(
        () => {
          if (failing) logger.info('[nuxt-chat] retention works again')
          failing = false
        },
        (error) => {
          // Logged once per outage: the store's own errors are reported where requests meet them.
          if (!failing) logger.warn('[nuxt-chat] retention pass failed; retrying on the next interval', error)
          failing = true
        },
      ).finally(next)
    }, schedule.interval)
    timer.unref?.()
  }
  next()

  return {
    ...log,
    async close() {
      stopped = true
      clearTimeout(timer)
      await running
      await log.close()
    },
  }
}

function nextTurn() {
  return new Promise(resolve => setImmediate(resolve))
}
