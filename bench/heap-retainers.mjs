// What holds the objects a set of connections added, by retainer path: the objects of `after`
// that `before` did not have (heap snapshot node ids are stable within one process), grouped by
// their first `depth` retainers (a strong one, the property or element name on each step), largest
// first, per connection. Plain Node, no dependencies; snapshots from bench/probe.mjs `heap`
// (`npm run bench -- --scenario=scale2 --quick --heap-snapshots`).
//   node bench/heap-retainers.mjs before.heapsnapshot after.heapsnapshot [connections] [types] [depth] [rows]
// `types`: `all`, or node types / constructor names separated by commas (`string,array`, `Object,closure`).
import { readFileSync } from 'node:fs'

const [beforeFile, afterFile, connections = '1', types = 'all', depthText = '3', rows = '40'] = process.argv.slice(2)
const depth = Number(depthText)
const perConnection = Number(connections)
const wanted = new Set(types.split(','))

const before = JSON.parse(readFileSync(beforeFile, 'utf8'))
const meta = before.snapshot.meta
const width = meta.node_fields.length
const idAt = meta.node_fields.indexOf('id')
const seen = new Set()
for (let i = 0; i < before.nodes.length; i += width) seen.add(before.nodes[i + idAt])

const { nodes, edges, strings } = JSON.parse(readFileSync(afterFile, 'utf8'))
const nodeTypes = meta.node_types[0]
const edgeTypes = meta.edge_types[0]
const edgeWidth = meta.edge_fields.length
const [typeAt, nameAt, sizeAt, edgeCountAt] = ['type', 'name', 'self_size', 'edge_count'].map(field => meta.node_fields.indexOf(field))
const count = nodes.length / width

// Each node's first edge, then every edge's target counted, then the retainers of each node.
const firstEdge = new Uint32Array(count + 1)
for (let n = 0, e = 0; n < count; n++) {
  firstEdge[n] = e
  e += nodes[n * width + edgeCountAt] * edgeWidth
}
firstEdge[count] = edges.length
const retainerStart = new Uint32Array(count + 1)
for (let e = 0; e < edges.length; e += edgeWidth) retainerStart[edges[e + 2] / width + 1]++
for (let n = 0; n < count; n++) retainerStart[n + 1] += retainerStart[n]
const retainerNode = new Uint32Array(retainerStart[count])
const retainerEdge = new Uint32Array(retainerStart[count])
const filled = retainerStart.slice(0, count)
for (let n = 0; n < count; n++) {
  for (let e = firstEdge[n]; e < firstEdge[n + 1]; e += edgeWidth) {
    const target = edges[e + 2] / width
    retainerNode[filled[target]] = n
    retainerEdge[filled[target]++] = e
  }
}

const typeOf = n => nodeTypes[nodes[n * width + typeAt]]
const nameOf = n => strings[nodes[n * width + nameAt]]
const label = n => (typeOf(n) === 'object' || typeOf(n) === 'closure' ? `${typeOf(n)}:${nameOf(n).slice(0, 40)}` : typeOf(n))
function edgeName(e) {
  const type = edgeTypes[edges[e]]
  return type === 'element' || type === 'hidden' ? `[${edges[e + 1]}]` : strings[edges[e + 1]]
}

const groups = new Map()
for (let n = 0; n < count; n++) {
  if (seen.has(nodes[n * width + idAt])) continue
  if (types !== 'all' && !wanted.has(typeOf(n)) && !wanted.has(nameOf(n))) continue
  const path = [label(n)]
  let current = n
  for (let step = 0; step < depth; step++) {
    let retainer = -1
    let via = -1
    // The first strong retainer, a named one if there is one.
    for (let r = retainerStart[current]; r < retainerStart[current + 1]; r++) {
      const type = edgeTypes[edges[retainerEdge[r]]]
      if (type === 'weak') continue
      retainer = retainerNode[r]
      via = retainerEdge[r]
      if (type !== 'hidden') break
    }
    if (retainer < 0) break
    path.push(`${edgeName(via)} <- ${label(retainer)}`)
    current = retainer
  }
  const key = path.join('  ')
  const group = groups.get(key) ?? { count: 0, size: 0 }
  group.count++
  group.size += nodes[n * width + sizeAt]
  groups.set(key, group)
}
const sorted = [...groups].sort((a, b) => b[1].size - a[1].size).slice(0, Number(rows))
for (const [key, group] of sorted) console.log(`${(group.size / perConnection).toFixed(1).padStart(8)} B ${(group.count / perConnection).toFixed(2).padStart(6)} × ${key}`)
