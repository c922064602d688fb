/**
 * What this tab knows of rooms before the rooms list does: the titles of rooms made and direct
 * rooms opened here (until the list shows them). Roles come from the server (`useChat().role`).
 */
export function useRoomNotes() {
  const labels = useState<Record<string, string>>('room-notes-labels', () => ({}))
  return {
    /** A room's title or a direct room's person, if this tab knows it. */
    labelOf: (room: string): string | undefined => labels.value[room],
    note(room: string, label: string) {
      labels.value = { ...labels.value, [room]: label }
    },
  }
}
