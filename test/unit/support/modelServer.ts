/**
 * An in-memory server that speaks docs/PROTOCOL.md (version 1: "Acknowledgements and order") to stubbed
 * WebSockets, for tests of the client that need a server's answers but no timing of a real one.
 * It holds per-sender cids, answers repeated cids with `duplicate: true`, and after a refusal
 * "for now" refuses every later cid of that connection until the refused one comes again.
 * Nothing happens on its own: a test (or a random schedule) moves every frame by hand.
 */

export interface StoredFrame {
  type: 'message'
  id: number
  room: string
  user: string
  uid: string
  message: string
  ts: number
  cid?: string
}

/** What the server decides for one message it would otherwise store. */
export type Verdict = 'store' | 'rate_limited' | 'unavailable' | 'rejected'

export class ModelSocket {
  readyState = 0
  onopen: (() => void) | null = null
  onmessage: ((event: { data: string }) => void) | null = null
  onclose: (() => void) | null = null
  /** Written by the client, not yet read by the server. */
  toServer: string[] = []
  /** Written by the server, not yet read by the client. */
  toClient: string[] = []
  readonly url: URL
  readonly room: string
  readonly uid: string
  /** The refusal this connection holds later cids behind. */
  held?: { cid: string, code: 'rate_limited' | 'unavailable' }

  constructor(url: URL | string, readonly server: ModelServer) {
    this.url = new URL(url)
    this.room = this.url.searchParams.get('room') ?? 'chat'
    const guest = this.url.searchParams.get('guest')
    // Without a guest key (a client before revision 2) its name stands in for an identity.
    this.uid = guest ? `guest:${guest}` : `name:${this.url.searchParams.get('name')}`
    server.sockets.push(this)
  }

  send(data: string) {
    if (this.readyState !== 1) throw new Error('send on a socket that is not open')
    this.toServer.push(data)
  }

  close() {
    if (this.readyState === 3) return
    this.readyState = 3
    this.server.forget(this)
  }
}

export class ModelServer {
  sockets: ModelSocket[] = []
  rooms = new Map<string, StoredFrame[]>()
  /** `room|uid|cid` → stored frame: cids are per sender. */
  cids = new Map<string, StoredFrame>()
  /** cids refused for good: a refusal for good is about the message (content, hook), so a resend gets it again. */
  rejected = new Set<string>()
  /** Decides the fate of each new message (a test's random source). */
  verdict: (socket: ModelSocket, cid: string | undefined) => Verdict = () => 'store'

  /** The WebSocket constructor to stub: every socket it makes talks to this server. */
  get WebSocket() {
    return socketClassFor(this)
  }

  log(room: string): StoredFrame[] {
    let log = this.rooms.get(room)
    if (!log) this.rooms.set(room, log = [])
    return log
  }

  live(): ModelSocket[] {
    return this.sockets.filter(socket => socket.readyState !== 3)
  }

  forget(socket: ModelSocket) {
    socket.toServer = []
    socket.toClient = []
  }

  /** Accept a connecting socket: welcome, presence, replay after `since` (all of it without). */
  accept(socket: ModelSocket) {
    socket.readyState = 1
    const since = Number(socket.url.searchParams.get('since') ?? 0)
    const name = socket.url.searchParams.get('name') ?? socket.uid
    const peer = { id: socket.uid, name, guest: true }
    socket.toClient.push(JSON.stringify({ type: 'system', event: 'welcome', room: socket.room, user: 'server', message: `Welcome ${name}!`, peer }))
    socket.toClient.push(JSON.stringify({ type: 'presence', room: socket.room, users: [peer], user: 'server', message: '1 online' }))
    for (const frame of this.log(socket.room)) if (frame.id > since) socket.toClient.push(JSON.stringify(frame))
    socket.onopen?.()
  }

  /** Refuse a connecting socket (it closes before it opened). */
  refuse(socket: ModelSocket) {
    socket.readyState = 3
    this.forget(socket)
    socket.onclose?.()
  }

  /** The connection breaks: whatever was on the wire either way is lost. */
  drop(socket: ModelSocket) {
    socket.readyState = 3
    this.forget(socket)
    socket.onclose?.()
  }

  /** Hand the client the next frame the server wrote. */
  deliver(socket: ModelSocket): boolean {
    const data = socket.toClient.shift()
    if (data === undefined) return false
    if (process.env.MODEL_TRACE) console.log(`client <- ${this.sockets.indexOf(socket)} ${data}`)
    socket.onmessage?.({ data })
    return true
  }

  /** Read and answer the next thing the client wrote. */
  process(socket: ModelSocket): boolean {
    const data = socket.toServer.shift()
    if (data === undefined) return false
    if (process.env.MODEL_TRACE) console.log(`server <- ${this.sockets.indexOf(socket)} ${data} held=${socket.held?.cid}`)
    let command: { type?: string, message?: string, cid?: string }
    try {
      command = JSON.parse(data)
    }
    catch {
      command = { type: 'message', message: data }
    }
    const answer = (frame: object) => socket.toClient.push(JSON.stringify(frame))
    if (command.type === 'ping' || data === 'ping') answer({ type: 'pong', user: 'server', message: 'pong' })
    if (command.type !== 'message' || typeof command.message !== 'string') return true
    const { cid, message } = command
    const refuse = (code: string, text: string) => answer({ type: 'error', code, user: 'server', message: text, ...(cid ? { cid } : {}) })
    if (cid !== undefined) {
      const stored = this.cids.get(`${socket.room}|${socket.uid}|${cid}`)
      if (stored) {
        answer({ ...stored, duplicate: true })
        return true
      }
      if (socket.held && socket.held.cid !== cid) {
        refuse(socket.held.code, 'held behind an earlier refusal')
        return true
      }
      socket.held = undefined
    }
    const verdict = this.rejected.has(`${socket.room}|${socket.uid}|${cid}`) ? 'rejected' : this.verdict(socket, cid)
    if (process.env.MODEL_TRACE) console.log(`server: ${verdict} ${message}`)
    if (verdict === 'rate_limited' || verdict === 'unavailable') {
      if (cid !== undefined) socket.held = { cid, code: verdict }
      refuse(verdict, 'not now')
      return true
    }
    if (verdict === 'rejected') {
      if (cid !== undefined) this.rejected.add(`${socket.room}|${socket.uid}|${cid}`)
      refuse('rejected', 'no')
      return true
    }
    const log = this.log(socket.room)
    const frame: StoredFrame = { type: 'message', id: log.length + 1, room: socket.room, user: socket.url.searchParams.get('name') ?? socket.uid, uid: socket.uid, message, ts: log.length + 1, ...(cid ? { cid } : {}) }
    log.push(frame)
    if (cid !== undefined) this.cids.set(`${socket.room}|${socket.uid}|${cid}`, frame)
    for (const member of this.live()) if (member.readyState === 1 && member.room === socket.room) member.toClient.push(JSON.stringify(frame))
    return true
  }
}

function socketClassFor(server: ModelServer) {
  return class extends ModelSocket {
    constructor(url: URL | string) {
      super(url, server)
    }
  }
}
