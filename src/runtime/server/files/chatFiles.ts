// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- an ambient module declaration has nothing to import
/// <reference path="../nitro.d.ts" />
import type { Database } from 'db0'
// The module picks ../utils/nitroV2.ts or ../utils/nitroV3.ts for the app's Nitro.
import { useStorage } from '#nuxt-chat/nitro'
import type { ChatFilesOptions } from '../../types'
import type { ClaimFiles } from '../utils/sendPipeline'
import type { RoomLog } from '../utils/roomLog'
import { chatLogger } from '../utils/logger'
import { CLAIM_TIMEOUT, claimFilesWith, createMemoryFileRecords, type FileRecords } from './fileRecords'
import { createDb0FileRecords } from './fileRecords.db0'

/** The types allowed when `files.types` is empty. */
export const DEFAULT_FILE_TYPES: readonly string[] = ['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/avif', 'application/pdf', 'text/plain', 'application/zip', 'audio/mpeg', 'audio/ogg', 'video/mp4', 'video/webm']
/** Files one sweep removes at most (the next sweep takes the rest). */
const SWEEP_BATCH = 500
const DAY = 24 * 60 * 60 * 1000

let records: FileRecords | undefined

/**
 * Open the uploads' records for the hub (in the chat's database, or in memory beside a memory
 * room log) and give the send pipeline its reservation of a message's uploads.
 */
export function startFileRecords(options: ChatFilesOptions, store: RoomLog, open: (() => Database) | undefined): ClaimFiles {
  records = open ? createDb0FileRecords(open) : createMemoryFileRecords(store)
  return claimFilesWith(records, options.maxFiles)
}

/** The uploads' records; the hub (`useChatHub()`) opens them first. */
export function fileRecords(): FileRecords {
  if (!records) throw new Error('[nuxt-chat] attachments are turned off')
  return records
}

/** Forget the records (after `close`), so a test can start another hub. */
export async function closeFileRecords() {
  const closing = records
  records = undefined
  await closing?.close()
}

/** The storage mount files are kept in (`files.storage`). */
export function fileStorage(options: ChatFilesOptions) {
  return useStorage(options.storage)
}

/** The allowed types: `files.types`, or the defaults when empty. */
export function allowedTypes(options: ChatFilesOptions): readonly string[] {
  return options.types?.length ? options.types : DEFAULT_FILE_TYPES
}

/** Remove files: their bytes first, then their records (a failure leaves them to the next sweep). */
export async function removeFiles(options: ChatFilesOptions, ids: string[]): Promise<void> {
  if (!ids.length) return
  const storage = fileStorage(options)
  await Promise.all(ids.map(id => storage.removeItem(id)))
  await fileRecords().markGone(ids)
}

/** Remove a deleted message's files at once (the sweep would, later). */
export async function removeFilesOfMessage(options: ChatFilesOptions, room: string, id: number): Promise<void> {
  await removeFiles(options, await fileRecords().ofMessage(room, id))
}

/** One sweep: uploads no message took within `orphanTimeout`, files of deleted or expired messages; forget removed files a day old. */
export async function sweepFiles(options: ChatFilesOptions): Promise<number> {
  const now = Date.now()
  const ids = await fileRecords().sweepable(now - options.orphanTimeout, now - CLAIM_TIMEOUT, SWEEP_BATCH)
  await removeFiles(options, ids)
  await fileRecords().forget(now - DAY)
  if (ids.length) chatLogger.debug(`[nuxt-chat] removed ${ids.length} files`)
  return ids.length
}

/** Remove every file of the mount (a memory store's start: no record knows them). */
export async function clearFiles(options: ChatFilesOptions): Promise<void> {
  const storage = fileStorage(options)
  await Promise.all((await storage.getKeys()).map(key => storage.removeItem(key)))
}
