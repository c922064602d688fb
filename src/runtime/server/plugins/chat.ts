import { defineNitroPlugin, useRuntimeConfig } from 'nitropack/runtime'
import type { ChatRuntimeConfig } from '../../types'
import { resetChatHub, useChatHub } from '../utils/useChatHub'

/**
 * Starts the chat hub with the server and stops it on shutdown, and caps incoming
 * WebSocket frames at `maxPayload` (the `ws` default is 100 MiB): a larger frame closes
 * that one connection with 1009 before it is buffered.
 */
export default defineNitroPlugin((nitroApp) => {
  const config = useRuntimeConfig().chat as ChatRuntimeConfig
  // Read by Nitro's node-server entry right after the plugins ran.
  const options = nitroApp.h3App.options as { websocket?: { serverOptions?: Record<string, unknown> } }
  options.websocket = {
    ...options.websocket,
    serverOptions: { ...options.websocket?.serverOptions, maxPayload: config.maxPayload, perMessageDeflate: false },
  }
  const hub = useChatHub()
  nitroApp.hooks.hook('close', async () => {
    await hub.close()
    resetChatHub()
  })
})
