// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- an ambient module declaration has nothing to import
/// <reference path="../nitro.d.ts" />
import type { Database } from 'db0'
// The module picks ../utils/nitroV2.ts or ../utils/nitroV3.ts for the app's Nitro.
import { useStorage } from '#nuxt-chat/nitro'
import { randomBytes } from 'node:crypto'
import { errorFrame, MAX_FILE_NAME_LENGTH, MAX_PREVIEW_BYTES, MAX_PREVIEW_SIDE, type ChatErrorFrame, type ChatFile } from '../../shared/protocol'
import type { ChatFilesOptions } from '../../types'
import type { ClaimFiles } from '../utils/sendPipeline'
import type { RoomLog } from '../utils/roomLog'
import { chatLogger } from '../utils/logger'
import { cleanShownText } from '../utils/names'
import { CLAIM_TIMEOUT, claimFilesWith, createMemoryFileRecords, type FileRecords } from './fileRecords'
import { createDb0FileRecords } from './fileRecords.db0'
import { sniffFile } from './fileType'

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

/** One file to store in a room for `uid`: its name as given, and its bytes. */
export interface FileToStore {
  room: string
  uid: string
  /** Whose bytes of the day it counts against (`uid` when absent). */
  quota?: string
  name: string
  bytes: Uint8Array
  /** An image's small preview, made by the uploader's browser. */
  preview?: Uint8Array
}

/** Types a preview may have: raster images a browser shows from a `data:` URL and never runs. */
const PREVIEW_TYPES = new Set(['image/png', 'image/jpeg', 'image/webp'])

/** A preview's `data:` URL, checked by its bytes, or why it is refused. */
async function previewOf(preview: Uint8Array): Promise<string | { error: string }> {
  if (preview.length > MAX_PREVIEW_BYTES) return { error: `A preview is at most ${MAX_PREVIEW_BYTES} bytes` }
  const sniffed = await sniffFile(preview)
  if (!PREVIEW_TYPES.has(sniffed.type) || !sniffed.width || !sniffed.height) return { error: 'A preview is a PNG, JPEG or WebP image' }
  if (sniffed.width > MAX_PREVIEW_SIDE || sniffed.height > MAX_PREVIEW_SIDE) return { error: `A preview is at most ${MAX_PREVIEW_SIDE} pixels a side` }
  return `data:${sniffed.type};base64,${Buffer.from(preview).toString('base64')}`
}

/**
 * A file's name as shown and offered for download (docs/PROTOCOL.md, "Names and titles"): without
 * controls, format, bidi or invisible characters, its last path segment, trimmed.
 */
export function cleanFileName(name: string): string {
  return cleanShownText(name.toWellFormed()).split(/[/\\]/).pop()!.trim()
}

/**
 * Check a file's type from its bytes against `files.types` (and its name and size), store its bytes
 * in the mount and its record: its metadata, or the refusal's status and `error` frame.
 */
export async function storeFile(options: ChatFilesOptions, file: FileToStore): Promise<ChatFile | { status: number, error: ChatErrorFrame }> {
  if (!file.bytes.length) return { status: 400, error: errorFrame('bad_request', 'File is empty') }
  if (file.bytes.length > options.maxSize) return { status: 413, error: errorFrame('too_long', `File is larger than ${options.maxSize} bytes`) }
  const name = typeof file.name === 'string' ? cleanFileName(file.name) : ''
  if (!name || name.length > MAX_FILE_NAME_LENGTH) return { status: 400, error: errorFrame('bad_request', `A file name is 1-${MAX_FILE_NAME_LENGTH} characters`) }
  const sniffed = await sniffFile(file.bytes)
  if (!allowedTypes(options).includes(sniffed.type)) return { status: 415, error: errorFrame('bad_request', `Files of type ${sniffed.type} are not allowed`) }
  let preview: string | undefined
  if (file.preview) {
    if (sniffed.width === undefined) return { status: 400, error: errorFrame('bad_request', 'Only an image has a preview') }
    const checked = await previewOf(file.preview)
    if (typeof checked !== 'string') return { status: 400, error: errorFrame('bad_request', checked.error) }
    preview = checked
  }
  const id = randomBytes(16).toString('base64url')
  const stored: ChatFile = { id, name, size: file.bytes.length, type: sniffed.type, ...(sniffed.width === undefined ? {} : { width: sniffed.width, height: sniffed.height }), ...(preview ? { preview } : {}) }
  await fileStorage(options).setItemRaw(id, file.bytes)
  try {
    await fileRecords().add({ ...stored, room: file.room, uid: file.uid, quota: file.quota ?? file.uid, created: Date.now() })
  }
  catch (error) {
    // Unrecorded bytes would never be swept.
    await fileStorage(options).removeItem(id).catch(() => {})
    throw error
  }
  return stored
}
