import { Worker } from 'node:worker_threads'

/** How often the worker copies the write-ahead log back into the database file, in ms: often enough that the writer's checkpoint at the bound finds little left to copy. */
const CHECKPOINT_INTERVAL = 100
/**
 * The write-ahead log's bound. A passive checkpoint never catches up with a writer that never
 * pauses (the log grew to 0.4-0.9 GB in 4 s of saturated appends), so past this the writer
 * checkpoints what the worker has not (a short stall, only then) and the log starts over, cut back to this size.
 */
export const SQLITE_WAL_MAX_BYTES = 16 * 1024 * 1024

// The worker's own connection: a PASSIVE checkpoint never waits for the writer and never blocks it.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads')
const { DatabaseSync } = require('node:sqlite')
const db = new DatabaseSync(workerData.path)
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)')
setInterval(() => checkpoint.get(), workerData.interval)
parentPort.postMessage('ready')
`

/** The part of node:sqlite's DatabaseSync the checkpointer needs. */
interface SqliteHandle {
  exec: (sql: string) => void
  location?: () => string | null
}

/** A running checkpointer; `stop` ends its thread (the writer checkpoints by itself again). */
export interface SqliteCheckpointer {
  stop: () => void
}

/**
 * Move SQLite's WAL checkpoints off the event loop: by default the COMMIT that fills the log
 * to 1000 pages copies them into the file synchronously (35-75 ms on a small machine). A
 * worker thread with its own connection checkpoints every second instead, and the writer's
 * automatic checkpoint waits for `SQLITE_WAL_MAX_BYTES` while (and only while) that worker runs.
 * Returns `undefined` (autocheckpoint stays) for an in-memory database or when no worker starts.
 */
export function startSqliteCheckpointer(db: SqliteHandle): SqliteCheckpointer | undefined {
  const path = typeof db.location === 'function' ? db.location() : null
  if (!path || path === ':memory:') return undefined
  let worker: Worker
  try {
    worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { path, interval: CHECKPOINT_INTERVAL } })
  }
  catch {
    return undefined
  }
  worker.unref()
  let stopped = false
  const restoreAutocheckpoint = () => {
    try {
      db.exec('PRAGMA wal_autocheckpoint = 1000')
    }
    catch {
      // The connection is gone: nothing to restore.
    }
  }
  // Raised to the bound only once the worker's connection is open; back to SQLite's default if the worker dies.
  worker.once('message', () => !stopped && db.exec(`PRAGMA wal_autocheckpoint = ${SQLITE_WAL_MAX_BYTES / 4096}; PRAGMA journal_size_limit = ${SQLITE_WAL_MAX_BYTES}`))
  worker.once('error', () => !stopped && restoreAutocheckpoint())
  worker.once('exit', () => !stopped && restoreAutocheckpoint())
  return {
    stop() {
      if (stopped) return
      stopped = true
      void worker.terminate()
    },
  }
}
