import { defineEventHandler, getRequestHeader, type H3Event } from 'h3'
import { errorFrame, isValidCid, type ChatErrorFrame, type ChatMessageFrame } from '../../shared/protocol'
import { admitHttpRequest, refuse } from '../utils/httpAdmission'
import { useChatHub } from '../utils/useChatHub'

/** Read a request body, refusing (413) before buffering more than `limit` bytes. */
async function readBoundedBody(event: H3Event, limit: number): Promise<string | undefined> {
  const declared = Number(getRequestHeader(event, 'content-length') ?? 0)
  if (declared > limit) return undefined
  const req = event.node.req
  // Listeners, not `for await`: leaving the iterator early destroys the request under the 413 (uncaught TypeError in Nitro's shutdown tracker); Node discards the rest of the body itself.
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const done = (body: string | undefined) => {
      req.off('data', onData).off('end', onEnd)
      resolve(body)
    }
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size > limit) done(undefined)
      else chunks.push(chunk)
    }
    const onEnd = () => done(Buffer.concat(chunks).toString('utf8'))
    req.on('data', onData).on('end', onEnd).on('error', reject)
  })
}

/** Parse a JSON `{ message, cid }` or a `text/plain` body; a string is the error to answer with. */
function parseBody(body: string, contentType: string): { message: string, cid?: string } | string {
  if (!contentType.includes('json')) return { message: body }
  let data: unknown
  try {
    data = JSON.parse(body)
  }
  catch {
    return 'Body is not valid JSON'
  }
  if (!data || typeof data !== 'object' || Array.isArray(data)) return 'Body must be a JSON object'
  const { message, cid } = data as Record<string, unknown>
  if (typeof message !== 'string') return '`message` must be a string'
  if (cid !== undefined && !isValidCid(cid)) return '`cid` must be a string of 1-64 characters'
  return cid === undefined ? { message } : { message, cid }
}

/** Send a message into a room over HTTP: answers the stored message frame, or an `error` frame. */
export default defineEventHandler(async (event): Promise<ChatMessageFrame | ChatErrorFrame> => {
  const admitted = await admitHttpRequest(event)
  if ('refused' in admitted) return admitted.refused
  const { admission, config } = admitted
  const body = await readBoundedBody(event, config.maxPayload)
  if (body === undefined) return refuse(event, 413, errorFrame('too_long', `Body is larger than ${config.maxPayload} bytes`))
  const parsed = parseBody(body, getRequestHeader(event, 'content-type') ?? '')
  if (typeof parsed === 'string') return refuse(event, 400, errorFrame('bad_request', parsed))
  const result = await useChatHub().send({
    room: admission.room,
    user: admission.user,
    sender: admission.sender,
    message: parsed.message,
    cid: parsed.cid,
    ip: admission.ip,
  })
  if (result.error) return refuse(event, result.status, result.error)
  return result.frame!
})
