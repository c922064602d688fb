/** A room's history in the AI SDK's message format, for an AI member's model call. */
import type { ChatStoredFrame, ChatUser } from '../../shared/protocol'
import type { ChatHub } from './hub'

/** One message as the AI SDK's `ModelMessage` (text content). */
export interface ChatAiMessage {
  role: 'user' | 'assistant'
  content: string
}

/** Which messages `aiMessages` maps. */
export interface ChatAiMessagesOptions {
  /** The AI member: its own messages are `assistant`. */
  as: Pick<ChatUser, 'id'>
  /** A thread's parent: the parent and its replies instead of the room's main timeline. */
  thread?: number
  /** The newest this many messages. @default 20 */
  limit?: number
}

/** Most messages `aiMessages` maps. */
const MAX_AI_MESSAGES = 200

/** The newest `limit` messages of a room (or thread), oldest first, as `ChatAiMessage`s. */
export async function aiMessagesOf(hub: Pick<ChatHub, 'history'>, room: string, { as, thread, limit = 20 }: ChatAiMessagesOptions): Promise<ChatAiMessage[]> {
  const size = Math.max(1, Math.min(MAX_AI_MESSAGES, Math.floor(limit)))
  const frames: ChatStoredFrame[] = await hub.history(room, Number.MAX_SAFE_INTEGER, size, thread)
  if (thread !== undefined) {
    const parent = (await hub.history(room, thread + 1, 1)).find(frame => frame.id === thread)
    if (parent) frames.unshift(parent)
  }
  const messages: ChatAiMessage[] = []
  for (const frame of frames) {
    if (frame.type !== 'message' || frame.deleted || frame.streaming) continue
    messages.push(frame.uid === as.id ? { role: 'assistant', content: frame.message } : { role: 'user', content: `${frame.user}: ${frame.message}` })
  }
  return messages
}
