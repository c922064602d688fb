import { createEventStream, defineEventHandler, setResponseHeader } from 'h3'
import { useRuntimeConfig } from 'nitropack/runtime'
import type { ChatRuntimeConfig } from '../../types'
import { onChatEvent } from '../utils/chatMetrics'
import { useChatHub } from '../utils/useChatHub'
import { refuseForeignRequest } from './sameOrigin'
import { devtoolsSnapshot } from './status'

/** How often the tab gets a fresh snapshot (rooms, store, bus, counters). */
const SNAPSHOT_INTERVAL = 1000

/** The DevTools tab's stream (dev only): a `state` event every second, a `frame` event for each room event. */
export default defineEventHandler((event) => {
  const refused = refuseForeignRequest(event)
  if (refused) return refused
  // The stream's headers, without a stream.
  if (event.method === 'HEAD') {
    setResponseHeader(event, 'content-type', 'text/event-stream')
    return ''
  }
  const config = useRuntimeConfig().chat as ChatRuntimeConfig
  const hub = useChatHub()
  const stream = createEventStream(event)
  const send = (name: string, data: unknown) => {
    stream.push({ event: name, data: JSON.stringify(data) }).catch(() => {})
  }
  const sendState = () => devtoolsSnapshot(config, hub.presence).then(state => send('state', state))
  const stop = onChatEvent((room, frame) => send('frame', { room, ...frame, ts: Date.now() }))
  sendState()
  const timer = setInterval(sendState, SNAPSHOT_INTERVAL)
  stream.onClosed(() => {
    clearInterval(timer)
    stop()
  })
  return stream.send()
})
