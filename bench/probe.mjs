// Preloaded into bench servers (`node --expose-gc --import bench/probe.mjs`): on SIGUSR2, run a
// full GC and write process.memoryUsage() as JSON to $BENCH_PROBE_FILE (for per-connection memory).
import { writeFileSync } from 'node:fs'

const file = process.env.BENCH_PROBE_FILE
if (file) {
  process.on('SIGUSR2', () => {
    globalThis.gc?.()
    globalThis.gc?.()
    writeFileSync(file, JSON.stringify({ ...process.memoryUsage(), at: Date.now() }))
  })
}
