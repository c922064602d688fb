// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- an ambient module declaration has nothing to import
/// <reference path="../nitro.d.ts" />
import { chatDefaults, pushDefaults } from '../../defaults'
import type { ChatRuntimeConfig } from '../../types'
import { joinBurstWarning } from '../utils/chatLimits'
import { badConfigNumbers } from '../utils/configNumbers'
import { connectorOptions, databaseProblem } from '../utils/databaseConfig'
import { guardIncomingSockets } from '../utils/incomingSockets'
import { sqliteFileOf, unsupportedStoreReason } from '../utils/platform'
import { endChatConnections, endChatConnectionsOnSignals } from '../utils/shutdown'
import { chatLogger, resetChatHub, useChatHub, useChatPush } from '../utils/useChatHub'
// The module picks ../utils/nitroV2.ts or ../utils/nitroV3.ts for the app's Nitro.
import { defineNitroPlugin, parseEnvOverrides, setupWebSocketServer, useRuntimeConfig } from '#nuxt-chat/nitro'

/**
 * Starts the chat hub with the server and stops it on shutdown, and caps incoming
 * WebSocket frames at `maxPayload` (the `ws` default is 100 MiB): a larger frame closes
 * that one connection with 1009 before it is buffered.
 */
export default defineNitroPlugin((nitroApp) => {
  const runtimeConfig = useRuntimeConfig()
  parseEnvOverrides(runtimeConfig.chat as Record<string, unknown>)
  const config = runtimeConfig.chat as ChatRuntimeConfig
  const database = config.storage === 'memory' ? false : config.database
  // A Node.js that cannot run the store, or a number setting that is not one, stops the server before it listens, in one line each.
  const problems = badConfigNumbers(config as unknown as Record<string, unknown>, chatDefaults)
  if (config.push && typeof config.push === 'object') problems.push(...badConfigNumbers(config.push as Record<string, unknown>, pushDefaults, 'CHAT_PUSH', 'chat.push'))
  const unsupported = database ? unsupportedStoreReason(database.connector) : undefined
  if (unsupported) problems.push(unsupported)
  const unreachable = database ? databaseProblem(database) : undefined
  if (unreachable) problems.push(unreachable)
  const refusal = problems.join('\n')
  if (refusal) {
    if (import.meta.dev) throw new Error(refusal)
    chatLogger.error(refusal)
    process.exit(1)
  }
  const joinBurst = joinBurstWarning(config)
  if (joinBurst) chatLogger.warn(joinBurst)
  setupWebSocketServer(nitroApp, config, runtimeConfig.app.baseURL)
  // Before the server listens: its first socket is already bounded and counted.
  guardIncomingSockets(config)
  const hub = useChatHub()
  chatLogger.info(`history: ${database ? sqliteFileOf(database.connector, connectorOptions(database)) ?? `db0 connector "${database.connector}"` : 'in memory (lost on restart)'}`)
  const push = useChatPush()
  endChatConnectionsOnSignals()
  nitroApp.hooks.hook('close', async () => {
    endChatConnections()
    await push?.close()
    await hub.close()
    resetChatHub()
  })
})
