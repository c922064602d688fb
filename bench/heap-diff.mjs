// What a set of connections holds: the difference between two heap snapshots of one server
// (bench/probe.mjs `heap`), by constructor, largest first. Plain Node, no dependencies.
//   node bench/heap-diff.mjs before.heapsnapshot after.heapsnapshot [connections] [rows]
import { readFileSync } from 'node:fs'

function byConstructor(file) {
  const { snapshot, nodes, strings } = JSON.parse(readFileSync(file, 'utf8'))
  const fields = snapshot.meta.node_fields
  const types = snapshot.meta.node_types[0]
  const width = fields.length
  const [typeAt, nameAt, sizeAt] = ['type', 'name', 'self_size'].map(field => fields.indexOf(field))
  const totals = new Map()
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + typeAt]]
    const key = type === 'string' || type === 'concatenated string' || type === 'sliced string' || type === 'number' || type === 'code' ? type : `${type} ${strings[nodes[i + nameAt]].slice(0, 60)}`
    const entry = totals.get(key) ?? { count: 0, size: 0 }
    entry.count++
    entry.size += nodes[i + sizeAt]
    totals.set(key, entry)
  }
  return totals
}

const [beforeFile, afterFile, connections = '1', rows = '40'] = process.argv.slice(2)
const before = byConstructor(beforeFile)
const after = byConstructor(afterFile)
const perConnection = Number(connections)
const diff = [...after].map(([key, { count, size }]) => ({ key, count: (count - (before.get(key)?.count ?? 0)) / perConnection, bytes: (size - (before.get(key)?.size ?? 0)) / perConnection }))
diff.sort((a, b) => b.bytes - a.bytes)
const total = diff.reduce((sum, row) => sum + row.bytes, 0)
console.log(`${total.toFixed(0)} bytes of heap per connection (${perConnection} connections)`)
for (const row of diff.slice(0, Number(rows))) console.log(`${row.bytes.toFixed(1).padStart(9)} B ${row.count.toFixed(2).padStart(7)} × ${row.key}`)
