/**
 * The resume cursor (`since`): the newest id up to which this client holds the room without a
 * hole. It moves only through ids received in room order on one connection (docs/PROTOCOL.md,
 * "Acknowledgements and order"), so a frame answered out of order never makes a reconnect skip
 * a message the client has not seen.
 */
export function createResumeCursor() {
  let value: number | undefined
  /** Ids above `value` received out of turn on this connection, waiting for the gap to fill. */
  const ahead = new Set<number>()
  let fresh = true

  return {
    get value() {
      return value
    },
    /** A new connection: its first message starts a run (the server may skip ids retention removed). */
    connected() {
      fresh = true
      ahead.clear()
    },
    /** A message frame in room order; `jump`: a replayed frame's `rev` (revision 5), which may skip numbers. */
    received(id: number, jump = false) {
      if (jump) {
        fresh = false
        if (value !== undefined && id <= value) return
        value = id
        for (const waiting of ahead) if (waiting <= value) ahead.delete(waiting)
        while (ahead.delete(value + 1)) value++
        return
      }
      if (fresh) {
        fresh = false
        if (value === undefined || id > value) value = id
        return
      }
      if (value === undefined || id <= value) return
      if (id !== value + 1) {
        ahead.add(id)
        return
      }
      value = id
      while (ahead.delete(value + 1)) value++
    },
  }
}
