// The room layout of the `scale2` scenario (protocol version 2): every connection follows 3 rooms,
// every room has `perRoom` members, and two rooms share at most one member.

/**
 * One load process's rooms for `blocks × perRoom` connections: connection `perRoom·b + j` (block b,
 * place j) joins room b, then `blocks + (b + j) mod blocks`, then `2·blocks + (b + 7j) mod blocks`.
 * Each map is one-to-one per place, so every room gets exactly `perRoom` members; two connections
 * sharing a room of one layer differ in the other two as long as 6·(j − j′) is never 0 mod `blocks`
 * (checked). Returns `rooms` (names, member indices) and `subs` (each connection's 3 room indices,
 * the first joined while connecting).
 */
export function threeRoomLayout(names, blocks, perRoom) {
  if (names.length !== 3 * blocks) throw new Error(`need ${3 * blocks} room names, got ${names.length}`)
  for (let d = 1; d < perRoom; d++) if ((6 * d) % blocks === 0) throw new Error(`${blocks} blocks: two rooms would share more than one member`)
  const rooms = names.map(name => ({ name, members: [] }))
  const subs = []
  for (let b = 0; b < blocks; b++) {
    for (let j = 0; j < perRoom; j++) {
      const connection = b * perRoom + j
      const mine = [b, blocks + ((b + j) % blocks), 2 * blocks + ((b + 7 * j) % blocks)]
      for (const room of mine) rooms[room].members.push(connection)
      subs.push(mine)
    }
  }
  return { rooms, subs }
}
