/**
 * What this tab knows of rooms that the rooms list does not carry (it has no titles, roles or
 * the other person of a direct room): the titles of rooms made here, the person of direct rooms
 * opened here, and the rooms this user owns (made here). Lost on reload: a demo, not a store.
 */
export function useRoomNotes() {
  const labels = useState<Record<string, string>>('room-notes-labels', () => ({}))
  const owned = useState<string[]>('room-notes-owned', () => [])
  return {
    /** A room's title or a direct room's person, if this tab knows it. */
    labelOf: (room: string): string | undefined => labels.value[room],
    note(room: string, label: string) {
      labels.value = { ...labels.value, [room]: label }
    },
    /** The user made this room here: its owner, who sees the moderator actions. */
    own(room: string) {
      if (!owned.value.includes(room)) owned.value = [...owned.value, room]
    },
    owns: (room: string): boolean => owned.value.includes(room),
  }
}
