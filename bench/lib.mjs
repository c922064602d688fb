// Shared helpers for the bench orchestrator and load generator (plain Node, no build step).
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'

/** Clock ticks per second for /proc/<pid>/stat (CLK_TCK is 100 on Linux unless the kernel says otherwise). */
export const CLK_TCK = 100

/** CPU time of a process (all threads: utime + stime), in microseconds. */
export function cpuMicros(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // The command name may contain spaces: fields after the closing paren are fixed.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 1e6 / CLK_TCK
}

/** Resident set size of a process, in bytes. */
export function rssBytes(pid) {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return match ? Number(match[1]) * 1024 : 0
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

export const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

/** Percentile of a sorted numeric array (nearest rank). */
export function percentile(sorted, p) {
  if (!sorted.length) return NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p / 100 * sorted.length) - 1))]
}

export function median(values) {
  const list = values.filter(value => Number.isFinite(value)).sort((a, b) => a - b)
  if (!list.length) return NaN
  const mid = list.length >> 1
  return list.length % 2 ? list[mid] : (list[mid - 1] + list[mid]) / 2
}

/**
 * The marker a bench message starts with: `~B<sent ms>|<seq>|` then padding. Not `@`: the module reads
 * `@B` as a mention and resolves the room's names for every message, which a plain message never asks.
 */
export const MARK = '~B'
const MARK_FIRST = 0x7E
const B = 0x42
const BAR = 0x7C

/** A bench message of exactly `size` bytes carrying its send time and sequence number. */
export function benchMessage(sentAt, seq, size) {
  const head = `${MARK}${sentAt.toFixed(3)}|${seq}|`
  return head.length >= size ? head : head + 'x'.repeat(size - head.length)
}

/**
 * Find bench markers in raw bytes (a WebSocket frame payload or an SSE chunk) without
 * converting to a string; calls `found(sentAt, seq)` for each. Returns the offset after the last one.
 */
export function scanMarkers(buffer, found) {
  let offset = 0
  let end = 0
  for (;;) {
    const at = buffer.indexOf(MARK_FIRST, offset)
    if (at < 0 || at + 1 >= buffer.length) return end
    if (buffer[at + 1] !== B) {
      offset = at + 1
      continue
    }
    let i = at + 2
    let whole = 0
    let frac = 0
    let scale = 1
    let dot = false
    for (; i < buffer.length; i++) {
      const c = buffer[i]
      if (c === 0x2E) dot = true
      else if (c >= 0x30 && c <= 0x39) {
        if (dot) {
          scale /= 10
          frac += (c - 0x30) * scale
        }
        else whole = whole * 10 + (c - 0x30)
      }
      else break
    }
    if (buffer[i] !== BAR) return end
    let seq = 0
    for (i++; i < buffer.length; i++) {
      const c = buffer[i]
      if (c >= 0x30 && c <= 0x39) seq = seq * 10 + (c - 0x30)
      else break
    }
    if (buffer[i] !== BAR) return end
    found(whole + frac, seq)
    offset = end = i + 1
  }
}

/** Write-type system calls a process made so far (`syscw` of /proc/<pid>/io: write, writev, pwrite…). */
export function writeCalls(pid) {
  const match = /syscw: (\d+)/.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))
  return match ? Number(match[1]) : NaN
}

/** A profile node's frame as `name dir/file:line` (CPU and allocation profiles alike). */
export function frameLabel({ functionName, url, lineNumber }) {
  return `${functionName || '(anonymous)'} ${url.split('/').slice(-2).join('/')}:${lineNumber + 1}`
}
