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

  const markDown = (error: Error) => {
    if (down) return
    down = true
    logger.warn(`[nuxt-chat] Redis bus unavailable (${error.message}); serving local peers only until it is back`)
  }
  publisher.on('error', markDown)
  subscriber.on('error', markDown)
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
      publisher.disconnect()
      subscriber.disconnect()
    },
  }
}
