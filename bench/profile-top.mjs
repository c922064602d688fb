// Self time per function of a .cpuprofile (from `--cpu-prof` or the probe's `profile-stop`):
//   node bench/profile-top.mjs file.cpuprofile [top=30]
// Prints the share of samples whose top frame is each function (name, file:line), GC and idle included.
import { readFileSync } from 'node:fs'
import { frameLabel } from './lib.mjs'

const [file, top = '30'] = process.argv.slice(2)
const profile = JSON.parse(readFileSync(file, 'utf8'))
const byId = new Map(profile.nodes.map(node => [node.id, node]))
const self = new Map()
for (const id of profile.samples) {
  const key = frameLabel(byId.get(id).callFrame)
  self.set(key, (self.get(key) ?? 0) + 1)
}
const total = profile.samples.length
const idle = [...self].filter(([key]) => key.startsWith('(idle)')).reduce((sum, [, n]) => sum + n, 0)
console.log(`${total} samples, ${((profile.endTime - profile.startTime) / 1e3).toFixed(0)} ms; busy ${(100 * (total - idle) / total).toFixed(1)}%; shares below are of busy samples`)
for (const [key, n] of [...self].filter(([key]) => !key.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, Number(top))) {
  console.log(`${(100 * n / (total - idle)).toFixed(1).padStart(5)}%  ${key}`)
}
