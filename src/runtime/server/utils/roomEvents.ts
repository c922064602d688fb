import type { ChatEventFrame, ChatReactionFrame } from '../../shared/protocol'
import type { StoredMessage } from './roomLog'

/** The text an old client (one that shows only `user` and `message`) sees for a delete. */
export const DELETE_NOTICE = 'deleted a message'

/** Serialise a stored `edit`, `delete` or `reaction` event as its wire frame (docs/PROTOCOL.md, "Edits, deletes and reactions"). */
export function eventFrame(event: StoredMessage): ChatEventFrame | ChatReactionFrame {
  if (event.kind === 'reaction') {
    const emoji = event.message.slice(1)
    const frame: ChatReactionFrame = { type: 'reaction', id: event.id, room: event.room, target: event.target!, emoji, on: event.message[0] === '+', user: event.user, message: emoji, ts: event.ts }
    if (event.cid !== undefined) frame.cid = event.cid
    if (event.uid !== undefined) frame.uid = event.uid
    if (event.guest) frame.guest = true
    return frame
  }
  const frame: ChatEventFrame = {
    type: event.kind!,
    id: event.id,
    room: event.room,
    target: event.target!,
    user: event.user,
    message: event.kind === 'delete' ? DELETE_NOTICE : event.message,
    ts: event.ts,
  }
  if (event.cid !== undefined) frame.cid = event.cid
  if (event.uid !== undefined) frame.uid = event.uid
  if (event.guest) frame.guest = true
  if (event.deleted) frame.deleted = true
  return frame
}
