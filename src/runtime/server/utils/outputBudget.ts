/**
 * What a connection's unsent output costs in memory, for `maxBufferedBytes`: its bytes, plus
 * the bookkeeping of each write queued behind a full socket (Node keeps a request object and a
 * buffer per write: measured 0.3-1 KiB, against ~50 bytes for a pong).
 */
export const QUEUED_WRITE_COST = 512

/** Writes queued since the socket last drained, given the bytes waiting right after one more write. */
export function queuedWritesAfter(queuedWrites: number, bufferedBytes: number): number {
  return bufferedBytes ? queuedWrites + 1 : 0
}

/** Is this output over the budget? */
export function isOverBudget(bufferedBytes: number, queuedWrites: number, maxBufferedBytes: number): boolean {
  return bufferedBytes + queuedWrites * QUEUED_WRITE_COST > maxBufferedBytes
}
