import { Redis } from 'ioredis'
import type { ConsolaInstance } from 'consola'
import { decodeBusEvent, encodeBusEvent, type ChatBus, type BusEvent } from './bus'

const CHANNEL = 'nuxt-chat'

/**
 * The bus on Redis pub/sub: one PUBLISH per event, one subscription per instance.
 * While Redis is away, events are dropped (never queued without bound) and the outage is
 * logged once; on recovery the hub catches its rooms up from the shared store.
 */
export function createRedisBus(url: string, instanceId: string, logger: ConsolaInstance): ChatBus {
  const options = { enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: (times: number) => Math.min(times * 200, 2000) }
  const publisher = new Redis(url, options)
  const subscriber = new Redis(url, { ...options, enableOfflineQueue: true })
  const listeners: ((event: BusEvent, origin: string) => void)[] = []
  const recoverListeners: (() => void)[] = []
  let down = false
  let closing = false

  const markDown = (error?: Error) => {
    if (down || closing) return
    down = true
    logger.warn(`[nuxt-chat] Redis bus unavailable (${error?.message ?? 'connection closed'}); serving local peers only until it is back`)
  }
  // A clean close (Redis restarted, failover) is an outage too, though no 'error' comes.
  for (const connection of [publisher, subscriber]) {
    connection.on('error', markDown)
    connection.on('close', () => markDown())
  }
  // Either connection coming back may end an outage: events were dropped or missed meanwhile.
  const recovered = () => {
    if (!down || publisher.status !== 'ready' || subscriber.status !== 'ready') return
    down = false
    logger.info('[nuxt-chat] Redis bus is back')
    for (const listener of recoverListeners) listener()
  }
  publisher.on('ready', recovered)
  subscriber.on('ready', recovered)
  subscriber.subscribe(CHANNEL).catch(markDown)
  subscriber.on('message', (_channel: string, data: string) => {
    const decoded = decodeBusEvent(data)
    if (!decoded || decoded.origin === instanceId) return
    for (const listener of listeners) listener(decoded.event, decoded.origin)
  })

  return {
    publish(event) {
      if (down || publisher.status !== 'ready') return false
      publisher.publish(CHANNEL, encodeBusEvent(event, instanceId)).catch(markDown)
      return true
    },
    onEvent(listener) {
      listeners.push(listener)
    },
    onRecover(listener) {
      recoverListeners.push(listener)
    },
    async close() {
      closing = true
      publisher.disconnect()
      subscriber.disconnect()
    },
  }
}
