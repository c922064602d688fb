import { defineEventHandler, readBody, setResponseStatus } from 'h3'
import { errorFrame, isValidRoom } from '../../shared/protocol'
import { useChatHub } from '../utils/useChatHub'
import { refuseForeignRequest } from './sameOrigin'

/** The server's own identity when the DevTools tab posts into a room. */
const SERVER = { id: 'server', name: 'server' }

/** The DevTools tab's "post as the server" box (dev only): stores `message` in `room` through the send pipeline. */
export default defineEventHandler(async (event) => {
  const refused = refuseForeignRequest(event)
  if (refused) return refused
  const body = await readBody<{ room?: unknown, message?: unknown }>(event).catch(() => undefined)
  if (!isValidRoom(body?.room) || typeof body.message !== 'string') {
    setResponseStatus(event, 400)
    return errorFrame('bad_request', 'Expected { room, message } as JSON, room of 1-64 characters from [A-Za-z0-9._:-]')
  }
  const result = await useChatHub().send({ room: body.room, user: SERVER, sender: SERVER.id, message: body.message })
  setResponseStatus(event, result.status)
  return result.error ?? result.frame
})
