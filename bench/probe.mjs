// Preloaded into bench servers (`node --expose-gc --import bench/probe.mjs`). On SIGUSR2 it
// answers in $BENCH_PROBE_FILE what $BENCH_PROBE_FILE.ask asks (no file: `memory`):
// - `memory`: a full GC, then process.memoryUsage() (for per-connection memory);
// - `loop`: this process's event-loop delay since the last `loop` (monitorEventLoopDelay, 1 ms
//   resolution), then a fresh histogram. Measured in the server, the same way for every server;
// - `heap`: a full GC, then a heap snapshot next to $BENCH_PROBE_FILE (its path in `snapshot`),
//   to see what each connection holds (`node bench/heap-diff.mjs a.heapsnapshot b.heapsnapshot`);
// - `profile-start` / `profile-stop <path>`: a CPU profile of one phase (inspector in this
//   process), written to <path> (open it in Chrome DevTools or `node bench/profile-top.mjs`);
// - `alloc-start` / `alloc-stop <path>`: the same for allocations, collected ones included
//   (a .heapprofile: `node bench/alloc-top.mjs <path>`).
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { Session } from 'node:inspector'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { getHeapSpaceStatistics, writeHeapSnapshot } from 'node:v8'

/** Resident memory by kind (Linux): anonymous (heap, malloc) and file-backed (code, mapped files), in bytes. */
function mappedMemory() {
  try {
    const rollup = readFileSync('/proc/self/smaps_rollup', 'utf8')
    const kib = name => Number(rollup.match(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm'))?.[1] ?? 0) * 1024
    return { anonymous: kib('Anonymous'), fileBacked: kib('Rss') - kib('Anonymous') }
  }
  catch {
    return {}
  }
}

/** What `<kind>-start` / `<kind>-stop <path>` record through the inspector. */
const RECORDINGS = {
  profile: {
    start: post => post('Profiler.enable').then(() => post('Profiler.setSamplingInterval', { interval: 200 })).then(() => post('Profiler.start')),
    stop: post => post('Profiler.stop'),
  },
  alloc: {
    // Every allocation sampled, also what the next GCs collect: where a phase's bytes go, not only what it keeps.
    start: post => post('HeapProfiler.enable').then(() => post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true })),
    stop: post => post('HeapProfiler.stopSampling'),
  },
}

const file = process.env.BENCH_PROBE_FILE
if (file) {
  const loop = monitorEventLoopDelay({ resolution: 1 })
  loop.enable()
  const ms = ns => ns / 1e6
  let session
  const post = (method, params) => new Promise((resolve, reject) => session.post(method, params, (error, result) => error ? reject(error) : resolve(result)))
  process.on('SIGUSR2', () => {
    let ask = 'memory'
    try {
      ask = readFileSync(`${file}.ask`, 'utf8').trim()
      rmSync(`${file}.ask`)
    }
    catch {
      // No question: memory.
    }
    const recording = /^(profile|alloc)-(start|stop)(?: (.+))?$/.exec(ask)
    if (recording) {
      const [, kind, verb, path] = recording
      const { start, stop } = RECORDINGS[kind]
      const answered = () => writeFileSync(file, JSON.stringify({ at: Date.now() }))
      if (verb === 'start') {
        session ??= new Session()
        session.connect()
        start(post).then(answered)
        return
      }
      stop(post).then(({ profile }) => {
        writeFileSync(path, JSON.stringify(profile))
        session.disconnect()
        answered()
      })
      return
    }
    if (ask === 'loop') {
      const answer = { loop: { max: ms(loop.max), p50: ms(loop.percentile(50)), p99: ms(loop.percentile(99)), mean: ms(loop.mean) }, at: Date.now() }
      loop.reset()
      writeFileSync(file, JSON.stringify(answer))
      return
    }
    globalThis.gc?.()
    globalThis.gc?.()
    if (ask === 'heap') {
      const snapshot = writeHeapSnapshot(`${file}.${Date.now()}.heapsnapshot`)
      writeFileSync(file, JSON.stringify({ snapshot, at: Date.now() }))
      return
    }
    // Each heap space's resident bytes (what RSS sees), by name.
    const spaces = Object.fromEntries(getHeapSpaceStatistics().map(space => [space.space_name, space.physical_space_size]))
    writeFileSync(file, JSON.stringify({ ...process.memoryUsage(), ...mappedMemory(), spaces, at: Date.now() }))
  })
}
