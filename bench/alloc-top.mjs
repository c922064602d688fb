// Bytes allocated per function of a .heapprofile (the probe's `alloc-stop`, run.mjs --alloc-prof):
//   node bench/alloc-top.mjs file.heapprofile [top=30] [per=N]
// Prints each function's share of the sampled bytes (self), and with per=N the bytes per N-th (e.g. per connection).
import { readFileSync } from 'node:fs'
import { frameLabel } from './lib.mjs'

const [file, top = '30', per] = process.argv.slice(2)
const { head } = JSON.parse(readFileSync(file, 'utf8'))
const count = Number(per?.replace('per=', '') || 0)
const self = new Map()
let total = 0
// Each node's selfSize is V8's estimate of the bytes allocated there (samples scaled by the interval).
const walk = (node) => {
  const key = frameLabel(node.callFrame)
  self.set(key, (self.get(key) ?? 0) + node.selfSize)
  total += node.selfSize
  for (const child of node.children) walk(child)
}
walk(head)
console.log(`${(total / 1024 / 1024).toFixed(1)} MiB sampled${count ? `, ${(total / count / 1024).toFixed(1)} KiB per ${count}th` : ''}`)
for (const [key, bytes] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(top))) {
  console.log(`${(100 * bytes / total).toFixed(1).padStart(5)}%  ${count ? `${(bytes / count).toFixed(0).padStart(6)} B  ` : ''}${key}`)
}
