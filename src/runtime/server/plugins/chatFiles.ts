// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- an ambient module declaration has nothing to import
/// <reference path="../nitro.d.ts" />
// The module picks ../utils/nitroV2.ts or ../utils/nitroV3.ts for the app's Nitro.
import { defineNitroPlugin, useRuntimeConfig } from '#nuxt-chat/nitro'
import type { Hookable } from 'hookable'
import type { ChatRuntimeConfig, ChatRuntimeHooks } from '../../types'
import { clearFiles, closeFileRecords, removeFilesOfMessage, sweepFiles } from '../files/chatFiles'
import { chatLogger, useChatHub } from '../utils/useChatHub'

/**
 * Attachments' lifetime (docs/PROTOCOL.md, "Attachments"): a deleted message's files go at once;
 * every `files.sweepInterval` the uploads no message took and the files of deleted or expired
 * messages go.
 */
export default defineNitroPlugin((nitroApp) => {
  const config = useRuntimeConfig().chat as ChatRuntimeConfig
  const options = config.files
  if (!options) return
  // The hub opens the files' records.
  useChatHub()
  // Records in memory start empty: files a previous process left in the mount belong to no message any more.
  if (config.storage === 'memory' || !config.database) void clearFiles(options).catch((error: unknown) => chatLogger.warn('[nuxt-chat] could not empty the files mount', error))
  const hooks = nitroApp.hooks as unknown as Hookable<ChatRuntimeHooks>
  hooks.hook('chat:stored', async ({ room, frame }) => {
    if (frame.type !== 'delete') return
    await removeFilesOfMessage(options, room, frame.target)
  })
  let sweeping = false
  const timer = options.sweepInterval > 0
    ? setInterval(() => {
        if (sweeping) return
        sweeping = true
        sweepFiles(options).catch((error: unknown) => {
          // Before the room log made its tables the sweep has nothing to find.
          if (!/no such table|does not exist/i.test(String((error as Error)?.message))) chatLogger.warn('[nuxt-chat] the files sweep failed', error)
        }).finally(() => sweeping = false)
      }, options.sweepInterval)
    : undefined
  timer?.unref()
  nitroApp.hooks.hook('close', async () => {
    clearInterval(timer)
    await closeFileRecords()
  })
})
