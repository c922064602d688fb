import type { ChatUser } from '../../shared/protocol'
import type { ChatBus } from './bus'

/** Who another instance has in one room, as it answered a `presence?` (or announced since). */
export interface PresenceQuery {
  /** Users by the instance that announced them. */
  readonly answers: Map<string, ChatUser[]>
  /** Settles once every instance listening on the bus answered, or `wait` ms passed. */
  readonly done: Promise<void>
  /** True once `done` settled. */
  settled: boolean
}

export interface PresenceQueriesOptions {
  bus: ChatBus
  /** Longest wait for the other instances' answers, in ms (the bound on a join when one is slow or an older version). */
  wait: number
}

interface OpenQuery extends PresenceQuery {
  /** How many other instances listen on the bus; undefined until the bus told. */
  expected?: number
  finish: () => void
}

/**
 * Ask the other instances who is in a room (`presence?` on the bus), once per room at a time:
 * a newcomer's first list, a guest's name check and `useChatServer().presence()` share one
 * question. A settled answer is kept (and kept current by later announcements) for another
 * `wait` ms, so a name check followed by its join asks once.
 */
export function createPresenceQueries({ bus, wait }: PresenceQueriesOptions) {
  const queries = new Map<string, OpenQuery>()

  function settleIfAnswered(query: OpenQuery) {
    if (query.expected !== undefined && query.answers.size >= query.expected) query.finish()
  }

  return {
    /** The room's question, asked now or still fresh; `undefined` when nobody can answer (one instance, or the bus is down). */
    ask(room: string): PresenceQuery | undefined {
      const asked = queries.get(room)
      if (asked) return asked
      if (bus.alone || !bus.publish({ kind: 'presence?', room })) return undefined
      let resolve!: () => void
      const done = new Promise<void>(settle => resolve = settle)
      const query: OpenQuery = {
        answers: new Map(),
        done,
        settled: false,
        finish() {
          if (query.settled) return
          query.settled = true
          clearTimeout(timer)
          resolve()
          // Fresh for another `wait`: the join after a name check reuses it.
          setTimeout(() => queries.get(room) === query && queries.delete(room), wait).unref?.()
        },
      }
      const timer = setTimeout(query.finish, wait)
      timer.unref?.()
      queries.set(room, query)
      // Without a count (a bus that cannot tell) the wait is the bound; a bus that fails to count is failing: no wait.
      bus.peers?.().then((count) => {
        query.expected = count
        settleIfAnswered(query)
      }, query.finish)
      return query
    },
    /** Another instance announced its users of a room (an answer, or news since). */
    heard(room: string, origin: string, users: ChatUser[]) {
      const query = queries.get(room)
      if (!query) return
      query.answers.set(origin, users)
      settleIfAnswered(query)
    },
  }
}

/** Everyone the other instances announced, each user once. */
export function usersOf(query: PresenceQuery): ChatUser[] {
  const users = new Map<string, ChatUser>()
  for (const list of query.answers.values()) for (const user of list) if (!users.has(user.id)) users.set(user.id, user)
  return [...users.values()]
}
