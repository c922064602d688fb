/** A member's `stop` of a streaming message, the same on every transport (docs/PROTOCOL.md, "Streaming messages"). */
import { errorFrame, type ChatErrorFrame, type ChatUser } from '../../shared/protocol'
import { limitRefusalFrame, type LimitSubject } from './chatLimits'
import { chatLogger, useChatHub } from './useChatHub'

/** What a POSTed `stop` is answered with when it went through. */
export interface ChatStopAnswer {
  type: 'stop'
  room: string
  id: number
}

/** Stop stream `id` in `room` as `user`, counted as a read (a store read or two each): undefined when done, else the `error` frame. */
export async function answerStop(room: string, id: number, user: ChatUser, subject: LimitSubject): Promise<ChatErrorFrame | undefined> {
  const hub = useChatHub()
  const refused = hub.readRefusal(subject)
  if (refused) return limitRefusalFrame(refused)
  try {
    const result = await hub.streams.stop(room, id, user)
    return 'error' in result ? result.error : undefined
  }
  catch (error) {
    chatLogger.error('[nuxt-chat] a stop failed', error)
    return errorFrame('unavailable', 'The stream could not be stopped; try again')
  }
}

/** The HTTP status of a refused `stop`. */
export function statusOfStop(error: ChatErrorFrame): number {
  return error.code === 'rate_limited' ? 429 : error.code === 'forbidden' ? 403 : error.code === 'not_found' ? 404 : 503
}
