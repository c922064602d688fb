import { shallowRef } from 'vue'
import { applyPresenceDiff, type ChatPresenceDiffFrame, type ChatUser } from '../shared/protocol'

/** Who is in the room and who is typing, as one connection hears it. */
export function createPresence(typingTimeout: number) {
  const users = shallowRef<ChatUser[]>([])
  const typing = shallowRef<ChatUser[]>([])
  const typingTimers = new Map<string, ReturnType<typeof setTimeout>>()

  function stopTyping(entry: ChatUser) {
    clearTimeout(typingTimers.get(entry.id))
    typingTimers.delete(entry.id)
    typing.value = typing.value.filter(user => user !== entry)
  }

  return {
    users,
    typing,
    /** A full `presence` list (the newcomer's first). */
    replace(list: ChatUser[]) {
      users.value = list
    },
    /** A `presence_diff`: leaves, then joins. */
    apply(diff: Pick<ChatPresenceDiffFrame, 'joins' | 'leaves'>) {
      users.value = applyPresenceDiff(users.value, diff)
    },
    /** Someone is typing; the notice expires without a new one. */
    typed(user: ChatUser) {
      clearTimeout(typingTimers.get(user.id))
      typingTimers.set(user.id, setTimeout(() => {
        const entry = typing.value.find(other => other.id === user.id)
        if (entry) stopTyping(entry)
      }, typingTimeout))
      if (!typing.value.some(entry => entry.id === user.id)) typing.value = [...typing.value, user]
    },
    /** A message from someone ends their typing notice (matched by id; by name from servers before revision 2). */
    spoke(uid: string | undefined, name: string) {
      const entry = typing.value.find(user => uid !== undefined ? user.id === uid : user.name === name)
      if (entry) stopTyping(entry)
    },
    /** Nobody is known to be online or typing while we cannot hear the room. */
    clear() {
      for (const timer of typingTimers.values()) clearTimeout(timer)
      typingTimers.clear()
      if (users.value.length) users.value = []
      if (typing.value.length) typing.value = []
    },
  }
}
