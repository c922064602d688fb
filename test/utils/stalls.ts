/** This thread's CPU time so far, in ms. */
function threadCpuMs() {
  const { user, system } = process.threadCpuUsage()
  return (user + system) / 1000
}

/**
 * The event loop's longest stall (ms) while `task` runs: the longest gap between two ticks of a
 * timer every `every` ms, counted in this thread's CPU time. Work that holds the loop burns this
 * thread's CPU all along; a loaded machine that deschedules the process (two cores, a dozen test
 * servers) stretches the wall-clock gap without our code doing anything. Not for a call that
 * sleeps (SQLite's busy timeout): that holds the loop without burning CPU.
 */
export async function longestStall(task: () => Promise<unknown>, every = 1): Promise<number> {
  let longest = 0
  let last = threadCpuMs()
  const tick = setInterval(() => {
    const now = threadCpuMs()
    longest = Math.max(longest, now - last)
    last = now
  }, every)
  await new Promise(resolve => setTimeout(resolve, 20))
  longest = 0
  try {
    await task()
    // A stall at the very end is seen by the next tick.
    await new Promise(resolve => setTimeout(resolve, 5 + every))
  }
  finally {
    clearInterval(tick)
  }
  return longest
}
