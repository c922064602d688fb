import type { Hookable } from 'hookable'
import type { ChatRuntimeHooks } from '../../types'
import type { RoomsWatcher } from './readState'
import { askToJoin, ChatRefusal, identify } from './access'

/** How long the app's answer for one user and room holds for rooms lists (ms): a refusal shows within this. */
export const LIST_ADMISSION_TTL = 3000
/** Answers kept at most per instance; the oldest go first. */
export const MAX_LIST_ADMISSIONS = 10_000

export interface ListAdmissionOptions {
  hooks: Hookable<ChatRuntimeHooks>
  logger: { error: (message: string, error?: unknown) => void }
  /** The clock (tests). */
  now?: () => number
}

/**
 * Rooms lists ask the app again, through `chat:join` (and on a version 1 list also `chat:identify`,
 * with `room` set and the list's own request), before they show or stream anything of a room: the
 * user may have been barred since they joined it. One answer per user and room serves every list
 * for `LIST_ADMISSION_TTL`.
 */
export function createListAdmission({ hooks, logger, now = Date.now }: ListAdmissionOptions) {
  /** `user id \n room` → until when, and whether the app let the user in. */
  const answers = new Map<string, { until: number, admitted: boolean }>()
  /** Questions to the hook under way, so a burst of events asks once. */
  const asking = new Map<string, Promise<boolean>>()

  async function ask(key: string, { request, user, data }: RoomsWatcher, room: string): Promise<boolean> {
    let admitted: boolean
    try {
      // The same user again: a hook that names nobody (a guest) or someone else does not let this user in.
      admitted = !request || (await identify({ request, room }, hooks))?.id === user.id
      if (admitted) await askToJoin(room, user, hooks, data)
    }
    catch (error) {
      if (!(error instanceof ChatRefusal)) logger.error('[nuxt-chat] the app\'s hook failed for a rooms list', error)
      admitted = false
    }
    if (answers.size >= MAX_LIST_ADMISSIONS) answers.delete(answers.keys().next().value!)
    answers.delete(key)
    answers.set(key, { until: now() + LIST_ADMISSION_TTL, admitted })
    return admitted
  }

  return {
    /**
     * May `user`'s rooms list (made by `request` on version 1) show `room`? A boolean at once while
     * the last answer holds, else a promise of the hooks' new one.
     */
    admitted(watcher: RoomsWatcher, room: string): boolean | Promise<boolean> {
      const key = `${watcher.user.id}\n${room}`
      const answer = answers.get(key)
      if (answer && answer.until > now()) return answer.admitted
      let pending = asking.get(key)
      if (!pending) {
        asking.set(key, pending = ask(key, watcher, room).finally(() => asking.delete(key)))
      }
      return pending
    },
  }
}

export type ListAdmission = ReturnType<typeof createListAdmission>
