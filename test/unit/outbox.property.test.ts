import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { effectScope, ref, watch, type EffectScope, type Ref } from 'vue'
import { useChat, type UseChatReturn } from '../../src/runtime/app/composables/useChat'
import { seededRandom as prng } from '../utils/chaos'
import { ModelServer, type ModelSocket, type Verdict } from './support/modelServer'

// Taken before the fake timers replace it.
const realNow = performance.now.bind(performance)
const SEEDS = Number(process.env.OUTBOX_SEEDS ?? 2000)
const FIRST_SEED = Number(process.env.OUTBOX_FIRST_SEED ?? 1)
const STEPS = 120
const CLIENTS = 3
const flushMicrotasks = async () => {
  for (let i = 0; i < 4; i++) await Promise.resolve()
}

interface Client {
  name: string
  room: Ref<string>
  chat: UseChatReturn
  scope: EffectScope
  closedByTest: boolean
  /** Texts `send()` accepted, in call order, with the room they went to. */
  accepted: { text: string, room: string }[]
  /** Every cid this client showed, with its text. */
  texts: Map<string, string>
  /** Texts reported `undelivered` (a room left with them waiting): allowed to be missing. */
  undelivered: Set<string>
}

/** One random run; returns a description of what broke, or undefined. */
async function run(seed: number): Promise<string | undefined> {
  const random = prng(seed)
  // Backoff jitter from the seed too, so a seed replays exactly.
  const jitter = prng(seed ^ 0x5EED)
  vi.spyOn(Math, 'random').mockImplementation(jitter)
  const pick = <T>(list: T[]): T | undefined => list.length ? list[Math.floor(random() * list.length)] : undefined
  const server = new ModelServer()
  const rejected = new Set<string>()
  let chaos = true
  server.verdict = () => {
    if (!chaos) return 'store'
    const roll = random()
    const verdict: Verdict = roll < 0.06 ? 'rate_limited' : roll < 0.1 ? 'unavailable' : roll < 0.14 ? 'rejected' : 'store'
    if (verdict === 'rejected') rejected.add(lastText)
    return verdict
  }
  let lastText = ''
  const process = (socket: ModelSocket) => {
    const data = socket.toServer[0]
    if (data !== undefined) {
      try {
        lastText = JSON.parse(data).message ?? data
      }
      catch {
        lastText = data
      }
    }
    return server.process(socket)
  }
  vi.stubGlobal('WebSocket', server.WebSocket)

  const clients: Client[] = []
  for (let i = 0; i < CLIENTS; i++) {
    // Every client is its own tab: its own session storage, so its own guest key.
    const storage = new Map<string, string>()
    vi.stubGlobal('sessionStorage', { getItem: (key: string) => storage.get(key) ?? null, setItem: (key: string, value: string) => storage.set(key, value) })
    const room = ref(random() < 0.5 ? 'a' : 'b')
    const scope = effectScope()
    const name = `s${seed}c${i}`
    const client: Client = { name, room, chat: undefined!, scope, closedByTest: false, accepted: [], texts: new Map(), undelivered: new Set() }
    client.chat = scope.run(() => {
      const chat = useChat({ room, name, drainTimeout: 30_000 })
      watch(chat.error, (error) => {
        for (const cid of error?.code === 'undelivered' ? error.cids ?? [] : []) client.undelivered.add(client.texts.get(cid)!)
      }, { flush: 'sync' })
      return chat
    })!
    clients.push(client)
  }
  let counter = 0
  try {
    for (let step = 0; step < STEPS; step++) {
      const roll = random()
      const client = pick(clients)!
      if (roll < 0.25) {
        const text = `${client.name}-${counter++}`
        if (client.chat.send(text)) client.accepted.push({ text, room: client.room.value })
      }
      else if (roll < 0.45) {
        const socket = pick(server.live().filter(s => s.readyState === 1 && s.toServer.length))
        if (socket) process(socket)
      }
      else if (roll < 0.65) {
        const socket = pick(server.live().filter(s => s.readyState === 1 && s.toClient.length))
        if (socket) server.deliver(socket)
      }
      else if (roll < 0.75) {
        const socket = pick(server.live().filter(s => s.readyState === 0))
        if (socket) {
          if (random() < 0.15) server.refuse(socket)
          else server.accept(socket)
        }
      }
      else if (roll < 0.8) {
        const socket = pick(server.live())
        if (socket) server.drop(socket)
      }
      else if (roll < 0.9) {
        vi.advanceTimersByTime(Math.floor(random() * 2000))
      }
      else if (roll < 0.93) {
        client.closedByTest = false
        client.chat.open()
      }
      else if (roll < 0.95) {
        client.closedByTest = true
        client.chat.close()
      }
      else {
        client.room.value = client.room.value === 'a' ? 'b' : 'a'
      }
      await flushMicrotasks()
      for (const { chat, texts } of clients) for (const message of chat.messages.value) if (message.cid) texts.set(message.cid, message.message)
    }

    // Settle: the network heals, the server stores everything, every client is connected.
    chaos = false
    for (const client of clients) {
      if (client.closedByTest) client.chat.open()
    }
    let quiet = 0
    for (let round = 0; round < 400 && quiet < 12; round++) {
      let moved = false
      for (const socket of server.live()) {
        if (socket.readyState === 0) {
          server.accept(socket)
          moved = true
        }
      }
      for (const socket of server.live()) {
        while (socket.readyState === 1 && socket.toServer.length) moved = process(socket) || moved
        while (socket.readyState === 1 && socket.toClient.length) moved = server.deliver(socket) || moved
      }
      await flushMicrotasks()
      vi.advanceTimersByTime(moved ? 0 : 1000)
      await flushMicrotasks()
      quiet = moved ? 0 : quiet + 1
    }
    await flushMicrotasks()

    for (const client of clients) {
      const status = client.chat.status.value
      if (status !== 'OPEN') return `${client.name} ends ${status}`
      for (const room of ['a', 'b']) {
        const log = server.log(room)
        const sent = client.accepted.filter(entry => entry.room === room)
        for (const { text } of sent) {
          const copies = log.filter(frame => frame.message === text).length
          if (copies > 1) return `${text} stored ${copies} times`
          if (copies === 0 && !rejected.has(text) && !client.undelivered.has(text)) return `${text} (accepted for ${room}) never stored`
        }
        const order = log.filter(frame => frame.message.startsWith(`${client.name}-`)).map(frame => frame.message)
        const expected = sent.map(entry => entry.text).filter(text => order.includes(text))
        if (order.join() !== expected.join()) return `${client.name} in ${room}: stored ${order.join()} but sent ${expected.join()}`
      }
      const shown = client.chat.messages.value
      const stored = shown.filter(message => message.id !== undefined).map(message => `${message.id}:${message.message}`)
      const truth = server.log(client.room.value).map(frame => `${frame.id}:${frame.message}`)
      if (stored.join() !== truth.join()) return `${client.name} shows ${stored.join()} but ${client.room.value} holds ${truth.join()}`
      const stuck = shown.filter(message => message.pending)
      if (stuck.length) return `${client.name} still shows ${stuck.map(message => message.message).join()} as pending`
    }
    return undefined
  }
  finally {
    for (const client of clients) client.scope.stop()
    vi.advanceTimersByTime(3_600_000)
  }
}

describe('outbox property: random sends, drops, refusals, duplicate acks, open/close, room switches', () => {
  beforeEach(() => {
    vi.useFakeTimers()
    vi.stubGlobal('location', { href: 'http://localhost:3000/' })
    vi.stubGlobal('document', { visibilityState: 'visible', addEventListener() {} })
    vi.stubGlobal('window', { addEventListener() {} })
    // The refusal probe: this server never refuses an upgrade for good.
    vi.stubGlobal('fetch', async () => ({ status: 426, body: null }))
  })
  afterEach(() => {
    vi.useRealTimers()
    vi.unstubAllGlobals()
    vi.restoreAllMocks()
  })

  it(`every accepted message is stored once, in send order, and every log equals the server's (${SEEDS} seeds)`, async () => {
    const started = realNow()
    const failures: string[] = []
    for (let seed = FIRST_SEED; seed < FIRST_SEED + SEEDS && failures.length < 5; seed++) {
      const problem = await run(seed)
      if (problem) failures.push(`seed ${seed}: ${problem}`)
    }
    const elapsed = Math.round(realNow() - started)
    console.log(`outbox property: ${SEEDS} seeds from ${FIRST_SEED} in ${elapsed} ms`)
    expect(failures).toEqual([])
  }, 300_000)
})
