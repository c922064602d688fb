/**
 * Room schemas (Standard Schema): which rooms a schema governs, what a refusal says, what is
 * stored, and the payload type the client infers from the same schema (checked by vue-tsc:
 * `npx vue-tsc --noEmit` type-checks this file).
 */
import type { StandardSchemaV1 } from '@standard-schema/spec'
import * as v from 'valibot'
import { afterEach, describe, expect, expectTypeOf, it } from 'vitest'
import type { UseChatReturn } from '../../src/runtime/app/composables/useChat'
import { checkChatPayload, chatSchemaOf, clearChatSchemas, defineChatSchema, type InferChatPayload } from '../../src/runtime/server/utils/chatSchema'
import { pollSchema } from '../fixtures/basic/shared/poll'

afterEach(() => clearChatSchemas())

/** A schema written against the spec alone (no validator library), whose validate is async. */
const evenNumber: StandardSchemaV1<unknown, { n: number }> = {
  '~standard': {
    version: 1,
    vendor: 'test',
    validate: async (value) => {
      const n = (value as { n?: unknown })?.n
      return typeof n === 'number' && n % 2 === 0 ? { value: { n } } : { issues: [{ message: 'n must be even', path: ['n'] }] }
    },
  },
}

describe('defineChatSchema', () => {
  it('matches a room by name, by * pattern, by RegExp and by test; the first match wins', () => {
    const a = defineChatSchema('exact', evenNumber)
    const b = defineChatSchema('poll-*', pollSchema)
    defineChatSchema(/^n\d+$/, evenNumber)
    defineChatSchema(room => room.endsWith('.json'), pollSchema)
    defineChatSchema('poll-x', evenNumber)
    expect(chatSchemaOf('exact')).toBe(a)
    expect(chatSchemaOf('exactly')).toBeUndefined()
    expect(chatSchemaOf('poll-x')).toBe(b)
    expect(chatSchemaOf('poll-')).toBe(b)
    expect(chatSchemaOf('xpoll-1')).toBeUndefined()
    expect(chatSchemaOf('n42')).toBe(evenNumber)
    expect(chatSchemaOf('data.json')).toBe(pollSchema)
  })

  it('escapes RegExp characters in a pattern', () => {
    defineChatSchema('a.b*', evenNumber)
    expect(chatSchemaOf('a.b1')).toBe(evenNumber)
    expect(chatSchemaOf('axb1')).toBeUndefined()
  })

  it('refuses what is not a Standard Schema', () => {
    expect(() => defineChatSchema('r', {} as StandardSchemaV1)).toThrow(/Standard Schema/)
  })
})

describe('checkChatPayload', () => {
  it('passes any text in a room without a schema', async () => {
    expect(await checkChatPayload('free', 'hello')).toEqual({ text: 'hello' })
  })

  it('refuses text that is not JSON, and lists every issue with its path', async () => {
    defineChatSchema('poll-*', pollSchema)
    expect(await checkChatPayload('poll-1', '{oops')).toEqual({ error: 'Message must be JSON in this room' })
    expect(await checkChatPayload('poll-1', JSON.stringify({ question: '', options: [] }))).toEqual({ error: 'question: Ask something; options: At least 2 options' })
  })

  it('stores the schema\'s output, with an async validator too', async () => {
    defineChatSchema('poll-*', pollSchema)
    defineChatSchema('even', evenNumber)
    expect(await checkChatPayload('poll-1', '{"question":"Q","options":["a","b"],"extra":1}')).toEqual({ text: '{"question":"Q","options":["a","b"],"multiple":false}' })
    expect(await checkChatPayload('even', '{"n":4,"m":1}')).toEqual({ text: '{"n":4}' })
    expect(await checkChatPayload('even', '{"n":3}')).toEqual({ error: 'n: n must be even' })
  })

  it('answers a schema that throws with a refusal, not a crash', async () => {
    const validate = () => {
      throw new Error('bug in schema')
    }
    defineChatSchema('boom', { '~standard': { version: 1, vendor: 'test', validate } })
    expect(await checkChatPayload('boom', '{}')).toEqual({ error: 'Message could not be validated' })
  })

  it('keeps a long list of issues short', async () => {
    defineChatSchema('many', v.array(v.number('not a number')))
    const { error } = await checkChatPayload('many', JSON.stringify(Array.from({ length: 200 }, () => 'x'))) as { error: string }
    expect(error.length).toBe(500)
    expect(error.endsWith('…')).toBe(true)
  })
})

describe('the client\'s type', () => {
  it('is the schema\'s output, as useChat<T>() shows it', () => {
    type Poll = InferChatPayload<typeof pollSchema>
    expectTypeOf<Poll>().toEqualTypeOf<{ question: string, options: string[], multiple: boolean }>()
    type Data = UseChatReturn<Poll>['messages']['value'][number]['data']
    expectTypeOf<Data>().toEqualTypeOf<Poll | undefined>()
    expectTypeOf<Parameters<UseChatReturn<Poll>['send']>[0]>().toEqualTypeOf<string | Poll>()
    // @ts-expect-error a poll needs options
    const wrong: Poll = { question: 'Q', multiple: false }
    expect(wrong).toBeDefined()
  })
})
