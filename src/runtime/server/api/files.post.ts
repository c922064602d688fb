// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- an ambient module declaration has nothing to import
/// <reference path="../nitro.d.ts" />
import type { H3Event } from 'h3'
// The module picks ../utils/nitroV2.ts or ../utils/nitroV3.ts for the app's Nitro.
import { defineEventHandler, getQuery, getRequestHeader, readBoundedBytes, setResponseHeader, setResponseStatus } from '#nuxt-chat/nitro'
import { errorFrame, MAX_FILE_NAME_LENGTH, MAX_PREVIEW_BYTES, type ChatErrorFrame, type ChatFile } from '../../shared/protocol'
import type { ChatFilesOptions, ChatRuntimeConfig } from '../../types'
import type { ChatAdmission } from '../utils/access'
import { limitSubjectOf } from '../utils/chatLimits'
import { ConnectionHold, holdConnection } from '../utils/connectionCaps'
import { admitHttpRequest, refuse, refuseLimited } from '../utils/httpAdmission'
import { chatLogger, useChatHub } from '../utils/useChatHub'
import { cleanFileName, fileRecords, storeFile } from '../files/chatFiles'

const DAY = 24 * 60 * 60 * 1000
/** Bytes of uploads being read, by quota: uploads sent at once count each other's before they are stored (per instance). */
const uploading = new Map<string, number>()
/** An upload may take this long at least (`bodyTimeout` when longer): a 10 MiB file over a slow link takes more than a message's 10 s. */
const UPLOAD_TIMEOUT = 60_000

/** Upload one file into a room (docs/PROTOCOL.md, "Attachments"): answers `201` with its metadata, or an `error` frame. */
export default defineEventHandler(async (event): Promise<ChatFile | ChatErrorFrame> => {
  const admitted = await admitHttpRequest(event)
  if ('refused' in admitted) return admitted.refused
  const { admission, config } = admitted
  const options = config.files
  if (!options) return refuse(event, 404, errorFrame('not_found', 'Attachments are turned off'))
  if (admission.rooms) return refuse(event, 400, errorFrame('bad_request', 'Upload to a room (`?room=`)'))
  // An upload counts as a message for the rate limit: a flood of small files costs rows and writes.
  const limited = useChatHub().uploadRefusal(limitSubjectOf(admission))
  if (limited) return refuseLimited(event, limited)
  // An open upload holds a connection slot of its address until answered, like a POST.
  const hold = holdConnection(limitSubjectOf(admission), config)
  if (!(hold instanceof ConnectionHold)) return refuseLimited(event, hold)
  try {
    return await answerUpload(event, admission, config, options)
  }
  catch (error) {
    chatLogger.error('[nuxt-chat] could not store an upload', error)
    return refuse(event, 503, errorFrame('unavailable', 'The file could not be stored; try again'))
  }
  finally {
    hold.release()
  }
})

/** Check the uploader may speak and has quota, read the bounded body, check its type by its bytes, store it. */
async function answerUpload(event: H3Event, admission: ChatAdmission, config: ChatRuntimeConfig, options: ChatFilesOptions): Promise<ChatFile | ChatErrorFrame> {
  // Uploading is speaking: a muted member, or one who may only read, is refused before any byte is read (Node discards the body).
  const decision = await useChatHub().access(admission.room, admission.user, 'send')
  if (!decision.allowed) {
    const error = errorFrame(decision.code, decision.message)
    if (decision.mutedUntil !== undefined) error.mutedUntil = decision.mutedUntil
    return refuse(event, decision.status, error)
  }
  const name = fileName(event)
  if (typeof name !== 'string') return refuse(event, 400, errorFrame('bad_request', name.error))
  const preview = previewHeader(event)
  if (preview && 'error' in preview) return refuse(event, 400, errorFrame('bad_request', preview.error))
  const declared = Number(getRequestHeader(event, 'content-length') ?? 0)
  if (declared > options.maxSize) return refuse(event, 413, errorFrame('too_long', `File is larger than ${options.maxSize} bytes`))
  // A guest's bytes are their address's: a guest id is whatever the client sends, or a new one each time.
  const scope = admission.user.guest ? 'address' : 'person'
  const quota = scope === 'address' ? `address:${admission.ip ?? admission.sender}` : admission.sender
  const used = options.bytesPerDay ? await fileRecords().usedSince(quota, Date.now() - DAY) + (uploading.get(quota) ?? 0) : 0
  if (options.bytesPerDay && used + declared > options.bytesPerDay) return refuse(event, 429, quotaFrame(options, scope))
  const reserved = options.bytesPerDay ? declared || options.maxSize : 0
  uploading.set(quota, (uploading.get(quota) ?? 0) + reserved)
  try {
    const bytes = await readBoundedBytes(event, options.maxSize, Math.max(config.bodyTimeout, UPLOAD_TIMEOUT))
    if (bytes === 'too_large') return refuse(event, 413, errorFrame('too_long', `File is larger than ${options.maxSize} bytes`))
    if (bytes === 'timeout') return refuseSlow(event)
    if (options.bytesPerDay && used + bytes.length > options.bytesPerDay) return refuse(event, 429, quotaFrame(options, scope))
    const stored = await storeFile(options, { room: admission.room, uid: admission.sender, quota, name, bytes, ...(preview ? { preview } : {}) })
    if ('error' in stored) return refuse(event, stored.status, stored.error)
    setResponseStatus(event, 201)
    return stored
  }
  finally {
    const left = (uploading.get(quota) ?? 0) - reserved
    if (left > 0) uploading.set(quota, left)
    else uploading.delete(quota)
  }
}

/** A body that trickles in: the rest is not worth waiting for, so the connection closes after the answer. */
function refuseSlow(event: H3Event): ChatErrorFrame {
  setResponseHeader(event, 'connection', 'close')
  return refuse(event, 408, errorFrame('bad_request', 'File not received in time'))
}

function quotaFrame(options: ChatFilesOptions, scope: 'person' | 'address'): ChatErrorFrame {
  const whose = scope === 'address' ? 'Guests from this address' : 'You'
  return { ...errorFrame('rate_limited', `${whose} may upload ${options.bytesPerDay} bytes in 24 hours`), scope, retryAfter: 3600 }
}

/** An image's preview: `X-File-Preview`, its bytes in base64 (checked by its bytes in `storeFile`). */
function previewHeader(event: H3Event): Uint8Array | { error: string } | undefined {
  const header = getRequestHeader(event, 'x-file-preview')
  if (header === undefined) return undefined
  if (header.length > Math.ceil(MAX_PREVIEW_BYTES / 3) * 4 || !/^[A-Z0-9+/]+={0,2}$/i.test(header)) return { error: `\`X-File-Preview\` is an image of at most ${MAX_PREVIEW_BYTES} bytes, in base64` }
  return Buffer.from(header, 'base64')
}

/** The file's name: `X-File-Name` (URL-encoded) or `?name=`, 1-255 characters once cleaned (no invisible characters, no path). */
function fileName(event: H3Event): string | { error: string } {
  const header = getRequestHeader(event, 'x-file-name')
  let name: unknown = getQuery(event).name
  if (header !== undefined) {
    try {
      name = decodeURIComponent(header)
    }
    catch {
      return { error: '`X-File-Name` is not URL-encoded UTF-8' }
    }
  }
  if (typeof name !== 'string' || !name.length) return { error: 'Name the file (`X-File-Name` or `?name=`)' }
  const cleaned = cleanFileName(name)
  if (!cleaned || cleaned.length > MAX_FILE_NAME_LENGTH) return { error: `A file name is 1-${MAX_FILE_NAME_LENGTH} characters` }
  return cleaned
}
