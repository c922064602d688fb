import type { LocationQueryRaw } from 'vue-router'

export type Transport = 'ws' | 'sse'

/** The protocol's room names: 1-64 characters from [A-Za-z0-9._:-]. */
export const ROOM_PATTERN = /^[\w.:-]{1,64}$/
export const DEFAULT_ROOM = 'chat'

const ADJECTIVES = ['Brave', 'Calm', 'Clever', 'Eager', 'Gentle', 'Happy', 'Jolly', 'Lucky', 'Mellow', 'Quick', 'Quiet', 'Sunny', 'Witty', 'Zesty']
const ANIMALS = ['Otter', 'Falcon', 'Panda', 'Fox', 'Heron', 'Koala', 'Lynx', 'Moose', 'Narwhal', 'Owl', 'Puffin', 'Quokka', 'Tapir', 'Yak']

function pick<T>(list: T[]): T {
  return list[Math.floor(Math.random() * list.length)]!
}

/** First value of a query parameter, trimmed. */
function queryValue(value: unknown): string | undefined {
  const first = Array.isArray(value) ? value[0] : value
  return typeof first === 'string' && first.trim() ? first.trim() : undefined
}

/**
 * Room, name and transport, kept in the URL query (`?room=…&name=…&transport=sse`) so a link
 * (or a test) opens the chat exactly as wanted, and the back button undoes a room switch.
 */
export function useChatSettings() {
  const route = useRoute()
  const router = useRouter()
  // Made once per visit; the URL's `name` wins.
  const guestName = useState('chat-guest-name', () => `${pick(ADJECTIVES)} ${pick(ANIMALS)}`)

  function update(patch: Record<string, string | undefined>) {
    const merged: LocationQueryRaw = { ...route.query, ...patch }
    const query = Object.fromEntries(Object.entries(merged).filter(([, value]) => value !== undefined))
    return router.replace({ query })
  }

  const room = computed<string>({
    get: () => {
      const value = queryValue(route.query.room)
      return value && ROOM_PATTERN.test(value) ? value : DEFAULT_ROOM
    },
    set: value => update({ room: value === DEFAULT_ROOM ? undefined : value }),
  })
  const name = computed<string>({
    get: () => queryValue(route.query.name)?.slice(0, 32) ?? guestName.value,
    set: value => update({ name: value.trim() ? value.trim().slice(0, 32) : undefined }),
  })
  const transport = computed<Transport>({
    get: () => queryValue(route.query.transport) === 'sse' ? 'sse' : 'ws',
    set: value => update({ transport: value === 'sse' ? 'sse' : undefined }),
  })

  return { room, name, transport }
}
