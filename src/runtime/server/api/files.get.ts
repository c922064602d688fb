// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- an ambient module declaration has nothing to import
/// <reference path="../nitro.d.ts" />
import type { H3Event } from 'h3'
// The module picks ../utils/nitroV2.ts or ../utils/nitroV3.ts for the app's Nitro.
import { defineEventHandler, requestOrigin, requestPath, setResponseHeader, useRuntimeConfig } from '#nuxt-chat/nitro'
import { errorFrame, INLINE_IMAGE_TYPES, isFileId, type ChatErrorFrame } from '../../shared/protocol'
import type { ChatRuntimeConfig } from '../../types'
import { ChatRefusal, refusalCode } from '../utils/access'
import { ChatLimitRefusal } from '../utils/chatLimits'
import { allowCrossOrigin } from '../utils/cors'
import { admitToChat, refuse, refuseLimited } from '../utils/httpAdmission'
import { chatLogger } from '../utils/useChatHub'
import { cleanFileName, fileRecords, fileStorage } from '../files/chatFiles'

/**
 * Serve a file to those admitted to its room (docs/PROTOCOL.md, "Attachments"): as a download
 * unless it is a safe image type, never sniffed, never run as a page.
 */
export default defineEventHandler(async (event): Promise<Uint8Array | ChatErrorFrame> => {
  const config = useRuntimeConfig().chat as ChatRuntimeConfig
  allowCrossOrigin(event, config)
  const options = config.files
  if (!options) return refuse(event, 404, errorFrame('not_found', 'Attachments are turned off'))
  const id = fileIdOf(requestPath(event))
  const record = isFileId(id) ? await fileRecords().get(id) : undefined
  if (!record) return refuse(event, 404, errorFrame('not_found', 'No such file'))
  const refused = await admitToRoom(event, record.room)
  if (refused) return refused
  const bytes = await fileStorage(options).getItemRaw<Uint8Array>(id)
  if (!bytes) return refuse(event, 404, errorFrame('not_found', 'No such file'))
  const inline = INLINE_IMAGE_TYPES.includes(record.type)
  setResponseHeader(event, 'content-type', record.type)
  setResponseHeader(event, 'x-content-type-options', 'nosniff')
  setResponseHeader(event, 'content-security-policy', 'sandbox; default-src \'none\'')
  setResponseHeader(event, 'cache-control', 'private, max-age=3600')
  setResponseHeader(event, 'content-disposition', `${inline ? 'inline' : 'attachment'}; ${dispositionName(cleanFileName(record.name))}`)
  return bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes as ArrayBuffer)
})

/**
 * Admit the request to the file's room as an SSE GET would be (identify hook, the room's
 * admission, `chat:join`). A same-origin `<img>` or a click on a link is a request no script made
 * (Fetch Metadata `no-cors`, `navigate`), which the chat routes refuse: here it only reads, so it
 * is admitted from the app's own origin; from any other site it is still refused.
 */
async function admitToRoom(event: H3Event, room: string): Promise<ChatErrorFrame | undefined> {
  const { headers, socket } = requestOrigin(event)
  const own = new Headers(headers)
  if (own.get('sec-fetch-site')?.toLowerCase() === 'same-origin') own.delete('sec-fetch-mode')
  try {
    await admitToChat(`${requestPath(event).split('?', 1)[0]}?room=${encodeURIComponent(room)}`, own, socket)
    return undefined
  }
  catch (error) {
    if (!(error instanceof ChatRefusal)) chatLogger.error('[nuxt-chat] admission failed', error)
    if (error instanceof ChatLimitRefusal) return refuseLimited(event, error.refusal)
    const status = error instanceof ChatRefusal ? error.status : 500
    return refuse(event, status, errorFrame(refusalCode(status), error instanceof ChatRefusal ? error.message : 'Internal error'))
  }
}

/** The id the path ends with, decoded; '' when it is not valid percent-encoding (answered 404 like any unknown id). */
function fileIdOf(path: string): string {
  try {
    return decodeURIComponent(path.split('?', 1)[0]!.split('/').pop() ?? '')
  }
  catch {
    return ''
  }
}

/** `filename` (ASCII, quotes and controls replaced) and `filename*` (UTF-8) of a `Content-Disposition`. */
function dispositionName(name: string): string {
  const ascii = name.replace(/[^\x20-\x7E]|["\\]/g, '_')
  return `filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name)}`
}
