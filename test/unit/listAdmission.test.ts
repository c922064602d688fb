/**
 * A rooms list's re-admission of each room (src/runtime/server/utils/listAdmission.ts): the app's
 * `chat:join` asked (and on a version 1 list `chat:identify`, with the list's request and `room` set), one answer per user and room for
 * `LIST_ADMISSION_TTL`, questions of a burst asked once, the cache bounded.
 */
import { createHooks } from 'hookable'
import { describe, expect, it } from 'vitest'
import { createListAdmission, LIST_ADMISSION_TTL, MAX_LIST_ADMISSIONS } from '../../src/runtime/server/utils/listAdmission'
import type { ChatRuntimeHooks } from '../../src/runtime/types'

const request = { url: new URL('http://app.example/_ws?rooms'), headers: new Headers({ cookie: 'session=u1' }) }
const user = { id: 'u1', name: 'U1' }
/** A version 1 list (its request kept) and a version 2 one (the data `chat:identify` set, no request). */
const v1List = { user, request, write() {} }
const v2List = { user, data: { team: 'blue' }, write() {} }

/** The hook: `barred` rooms refused with 403, `others` answered with another user, `broken` throwing a bug. */
function setup() {
  const hooks = createHooks<ChatRuntimeHooks>()
  const asked: string[] = []
  const barred = new Set<string>()
  const errors: unknown[] = []
  let clock = 0
  hooks.hook('chat:identify', (ctx) => {
    asked.push(ctx.room)
    if (ctx.room === 'broken') throw new Error('bug in the hook')
    if (barred.has(ctx.room)) throw Object.assign(new Error('Barred'), { statusCode: 403 })
    ctx.user = ctx.room === 'others' ? { id: 'u2', name: 'U2' } : user
  })
  const joins: string[] = []
  hooks.hook('chat:join', (ctx) => {
    joins.push(`${ctx.room} ${JSON.stringify(ctx.data ?? null)}`)
    if (ctx.room === 'red-only' && ctx.data?.team !== 'red') ctx.allow = false
  })
  const admission = createListAdmission({ hooks, logger: { error: (_message, error) => errors.push(error) }, now: () => clock })
  return { admission, asked, joins, barred, errors, tick: (ms: number) => clock += ms }
}

describe('rooms list re-admission', () => {
  it('asks the hook once per user and room while its answer holds, again after; a refusal shows then', async () => {
    const { admission, asked, barred, tick } = setup()
    const burst = [admission.admitted(v1List, 'r'), admission.admitted(v1List, 'r')]
    expect(await Promise.all(burst)).toEqual([true, true])
    expect(asked).toEqual(['r'])
    // Known now: answered at once, without a promise.
    expect(admission.admitted(v1List, 'r')).toBe(true)
    barred.add('r')
    tick(LIST_ADMISSION_TTL - 1)
    expect(admission.admitted(v1List, 'r')).toBe(true)
    tick(1)
    expect(await admission.admitted(v1List, 'r')).toBe(false)
    expect(admission.admitted(v1List, 'r')).toBe(false)
    expect(asked).toEqual(['r', 'r'])
  })

  it('a hook that names someone else, or fails, lets nobody in (the failure logged)', async () => {
    const { admission, errors } = setup()
    expect(await admission.admitted(v1List, 'others')).toBe(false)
    expect(await admission.admitted(v1List, 'broken')).toBe(false)
    expect(errors).toHaveLength(1)
  })

  it('keeps at most MAX_LIST_ADMISSIONS answers, dropping the oldest', async () => {
    const { admission, asked } = setup()
    for (let index = 0; index <= MAX_LIST_ADMISSIONS; index++) await admission.admitted(v1List, `room-${index}`)
    asked.length = 0
    expect(admission.admitted(v1List, `room-${MAX_LIST_ADMISSIONS}`)).toBe(true)
    expect(await admission.admitted(v1List, 'room-0')).toBe(true)
    expect(asked).toEqual(['room-0'])
  }, 30_000)

  it('asks chat:join with what identify set on a version 2 list, without asking identify again', async () => {
    const { admission, asked, joins } = setup()
    expect(await admission.admitted(v2List, 'lobby')).toBe(true)
    expect(await admission.admitted(v2List, 'red-only')).toBe(false)
    expect(asked).toEqual([])
    expect(joins).toEqual(['lobby {"team":"blue"}', 'red-only {"team":"blue"}'])
  })
})
