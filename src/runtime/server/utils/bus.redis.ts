import { Redis } from 'ioredis'
import type { ConsolaInstance } from 'consola'
import { decodeBusEvent, encodeBusEvent, type ChatBus, type BusEvent } from './bus'

// While the bus is down, how often to check that Redis answers again.
const PROBE_INTERVAL = 250
const PROBE_TIMEOUT = 2000

export interface RedisBusOptions {
  /** The Redis channel of this deployment (see `deploymentChannel`). */
  channel: string
  /** This instance's id: its own events come back on the channel and are skipped. */
  instanceId: string
  logger: ConsolaInstance
}

/**
 * The bus on Redis pub/sub: one PUBLISH per event, one subscription per instance.
 * The bus is up only while both connections are ready, subscribed and answering; any failed
 * command or lost connection takes it down, and a probe brings it back once Redis answers
 * again. While it is down, events are dropped (never queued without bound) and the outage is
 * logged once; on recovery the rooms whose messages were dropped are announced (`sync`) and
 * the hub catches its rooms up from the shared store. The first connect counts as a recovery:
 * what was sent before it is caught up the same way.
 */
export function createRedisBus(url: string, { channel, instanceId, logger }: RedisBusOptions): ChatBus {
  const options = { enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: (times: number) => Math.min(times * 100, 1000) }
  const publisher = new Redis(url, options)
  const subscriber = new Redis(url, { ...options, enableOfflineQueue: true })
  const listeners: ((event: BusEvent, origin: string) => void)[] = []
  const recoverListeners: (() => void)[] = []
  const downListeners: ((reason: string) => void)[] = []
  /** Rooms whose message PUBLISH failed after it was handed over, with the newest such id. */
  const unsent = new Map<string, number>()
  let up = false
  let warned = false
  let closing = false
  let probe: ReturnType<typeof setTimeout> | undefined

  const markDown = (error?: Error) => {
    if (closing) return
    if (!warned) {
      warned = true
      logger.warn(`[nuxt-chat] Redis bus unavailable (${error?.message ?? 'connection closed'}); serving local peers only until it is back`)
    }
    up = false
    for (const listener of downListeners) listener(error?.message ?? 'connection closed')
    scheduleProbe()
  }
  const scheduleProbe = (delay = PROBE_INTERVAL) => {
    if (closing || up || probe) return
    probe = setTimeout(checkUp, delay)
    probe.unref?.()
  }
  // Up means: both connections ready, the subscription confirmed, and Redis answering commands (not BUSY).
  async function checkUp() {
    probe = undefined
    if (closing || up) return
    try {
      if (publisher.status !== 'ready' || subscriber.status !== 'ready') throw new Error('not connected')
      // A Redis that accepts the connection but never answers must not stall the probe.
      let timeout: ReturnType<typeof setTimeout> | undefined
      await Promise.race([
        Promise.all([subscriber.subscribe(channel), publisher.ping()]),
        new Promise((_, reject) => timeout = setTimeout(reject, PROBE_TIMEOUT, new Error('no answer'))),
      ]).finally(() => clearTimeout(timeout))
    }
    catch {
      scheduleProbe()
      return
    }
    if (closing || up) return
    up = true
    if (warned) logger.info('[nuxt-chat] Redis bus is back')
    warned = false
    for (const [room, id] of unsent) {
      unsent.delete(room)
      send({ kind: 'sync', room, id })
    }
    for (const listener of recoverListeners) listener()
  }
  function send(event: BusEvent) {
    publisher.publish(channel, encodeBusEvent(event, instanceId)).catch((error: Error) => {
      // Handed over but not sent: the other instances learn of the room's messages on recovery.
      if (event.kind === 'message' || event.kind === 'sync') unsent.set(event.room, Math.max(event.id, unsent.get(event.room) ?? 0))
      markDown(error)
    })
  }

  // A clean close (Redis restarted, failover) is an outage too, though no 'error' comes.
  for (const connection of [publisher, subscriber]) {
    connection.on('error', markDown)
    connection.on('close', () => markDown())
    connection.on('ready', () => scheduleProbe(0))
  }
  subscriber.on('message', (from: string, data: string) => {
    if (from !== channel) return
    const decoded = decodeBusEvent(data)
    if (!decoded || decoded.origin === instanceId) return
    for (const listener of listeners) listener(decoded.event, decoded.origin)
  })

  return {
    publish(event) {
      if (!up || publisher.status !== 'ready') return false
      send(event)
      return true
    },
    onEvent(listener) {
      listeners.push(listener)
    },
    onRecover(listener) {
      recoverListeners.push(listener)
    },
    onDown(listener) {
      downListeners.push(listener)
    },
    async peers() {
      // The channel's subscribers are the deployment's instances, this one included.
      const [, count] = await publisher.pubsub('NUMSUB', channel) as [string, number | string]
      return Math.max(0, Number(count) - 1)
    },
    async close() {
      closing = true
      clearTimeout(probe)
      publisher.disconnect()
      subscriber.disconnect()
    },
  }
}
