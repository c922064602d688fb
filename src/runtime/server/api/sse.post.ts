// eslint-disable-next-line @typescript-eslint/triple-slash-reference -- an ambient module declaration has nothing to import
/// <reference path="../nitro.d.ts" />
import type { H3Event } from 'h3'
// The module picks ../utils/nitroV2.ts or ../utils/nitroV3.ts for the app's Nitro.
import { defineEventHandler, getRequestHeader, readBoundedBody, setResponseHeader } from '#nuxt-chat/nitro'
import { errorFrame, isIdInRange, parseReadCommand, parseSendCommand, type ChatClientCommand, type ChatErrorFrame, type ChatReadFrame, type ChatStoredFrame } from '../../shared/protocol'
import type { ChatRuntimeConfig } from '../../types'
import type { ChatAdmission } from '../utils/access'
import { limitSubjectOf } from '../utils/chatLimits'
import { ConnectionHold, holdConnection } from '../utils/connectionCaps'
import { admitHttpRequest, refuse, refuseLimited } from '../utils/httpAdmission'
import { useChatHub } from '../utils/useChatHub'
import { answerStop, statusOfStop, type ChatStopAnswer } from '../utils/streamStop'
import { sendFieldsOf } from '../utils/sendPipeline'
import { answerStreamCommand, asksVersion2 } from '../utils/sseRooms'

/** Parse a JSON `{ type?, message, cid?, target? }` (or `{ type: 'read', id? }`) or a `text/plain` body; a string is the error to answer with. */
function parseBody(body: string, contentType: string): ReturnType<typeof parseSendCommand> | Extract<ChatClientCommand, { type: 'read' | 'stop' }> {
  if (!contentType.includes('json')) return { type: 'message', message: body }
  let data: unknown
  try {
    data = JSON.parse(body)
  }
  catch {
    return 'Body is not valid JSON'
  }
  if (!data || typeof data !== 'object' || Array.isArray(data)) return 'Body must be a JSON object'
  const command = data as Record<string, unknown>
  if (command.type === 'stop') return isIdInRange(command.id) ? { type: 'stop', id: command.id } : '`id` must be a message id'
  return command.type === 'read' ? parseReadCommand(command) : parseSendCommand(command)
}

/** Send a message into a room over HTTP: answers the stored message frame, or an `error` frame. */
export default defineEventHandler(async (event): Promise<ChatStoredFrame | ChatReadFrame | ChatErrorFrame | ChatStopAnswer | string> => {
  const admitted = await admitHttpRequest(event, asksVersion2(event) ? 2 : undefined)
  if ('refused' in admitted) return admitted.refused
  const { admission, config } = admitted
  // `?v=2&stream=`: a command for the person's version 2 stream (docs/PROTOCOL.md, "Version 2 over SSE").
  if (admission.version === 2) return answerStreamCommand(event, admission, config)
  if (admission.rooms) return refuse(event, 400, errorFrame('bad_request', 'POST to a room (`?room=`), not to the rooms list'))
  // An open POST holds a connection slot of its address until answered.
  const hold = holdConnection(limitSubjectOf(admission), config)
  if (!(hold instanceof ConnectionHold)) return refuseLimited(event, hold)
  try {
    return await answerPost(event, admission, config)
  }
  finally {
    hold.release()
  }
})

/** Read, check and send one POSTed message. */
async function answerPost(event: H3Event, admission: ChatAdmission, config: ChatRuntimeConfig): Promise<ChatStoredFrame | ChatReadFrame | ChatErrorFrame | ChatStopAnswer> {
  const body = await readBoundedBody(event, config.maxPayload, config.bodyTimeout)
  if (body === 'too_large') return refuse(event, 413, errorFrame('too_long', `Body is larger than ${config.maxPayload} bytes`))
  if (body === 'timeout') {
    // The rest of the body is not worth waiting for: close the connection after the answer.
    setResponseHeader(event, 'connection', 'close')
    return refuse(event, 408, errorFrame('bad_request', `Body not received within ${config.bodyTimeout} ms`))
  }
  const parsed = parseBody(body, getRequestHeader(event, 'content-type') ?? '')
  if (typeof parsed === 'string') return refuse(event, 400, errorFrame('bad_request', parsed))
  if (parsed.type === 'read') return answerRead(event, admission, parsed.id)
  if (parsed.type === 'stop') {
    const error = await answerStop(admission.room, parsed.id, admission.user, limitSubjectOf(admission))
    return error ? refuse(event, statusOfStop(error), error) : { type: 'stop', room: admission.room, id: parsed.id }
  }
  const result = await useChatHub().send({
    room: admission.room,
    user: admission.user,
    sender: admission.sender,
    ...sendFieldsOf(parsed),
    cid: parsed.cid,
    ip: admission.ip,
  })
  if (result.error) return refuse(event, result.status, result.error)
  // A repeated cid: the stored frame, marked so the client does not take it for a new message.
  return result.duplicate ? { ...result.frame!, duplicate: true } : result.frame!
}

/** Move the sender's read position in the room (docs/PROTOCOL.md, "Read state"): answered with the `read` frame. */
async function answerRead(event: H3Event, admission: ChatAdmission, id: number | undefined): Promise<ChatReadFrame | ChatErrorFrame> {
  // Limited before anything is read: a guest's attempts count against its address too.
  const refused = useChatHub().readRefusal(limitSubjectOf(admission))
  if (refused) return refuseLimited(event, refused)
  const result = await useChatHub().read(admission.room, admission.user, id)
  return 'error' in result ? refuse(event, result.status, result.error) : result
}
