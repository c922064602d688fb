/** The `/rooms` page's transport (`?transport=sse`: the tab's one event stream; else its one WebSocket), for every rooms list and pane on it. */
export function useRoomsTransport(): 'ws' | 'sse' {
  return useRoute().query.transport === 'sse' ? 'sse' : 'ws'
}
