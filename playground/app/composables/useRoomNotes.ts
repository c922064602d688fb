/**
 * What this tab knows of rooms before or beyond the rooms list: the titles of rooms made and
 * direct rooms opened here (until the list shows them), and the rooms this user owns (made here:
 * the protocol tells a client no roles). Lost on reload: a demo, not a store.
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
