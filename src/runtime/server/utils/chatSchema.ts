import type { StandardSchemaV1 } from '@standard-schema/spec'
import { chatLogger } from './logger'

/** Which rooms a schema governs: one room's name, a pattern with `*` (any characters), a RegExp or a test. */
export type ChatRoomMatcher = string | RegExp | ((room: string) => boolean)

/** The payload type a schema accepts after validation (what `useChat<T>()` should be given). */
export type InferChatPayload<Schema extends StandardSchemaV1> = StandardSchemaV1.InferOutput<Schema>

/** The outcome of checking one message against its room's schema. */
export type ChatPayloadCheck = { text: string } | { error: string }

interface RoomSchema {
  matches: (room: string) => boolean
  schema: StandardSchemaV1
}

// Nitro's runtime config holds no functions: schemas are registered by code, from a server plugin.
const registry: RoomSchema[] = []

/** The longest validation message sent back; a schema may produce many issues. */
const MAX_ISSUES_TEXT = 500

function toMatcher(rooms: ChatRoomMatcher): (room: string) => boolean {
  if (typeof rooms === 'function') return rooms
  if (rooms instanceof RegExp) return room => rooms.test(room)
  if (!rooms.includes('*')) return room => room === rooms
  const pattern = new RegExp(`^${rooms.split('*').map(part => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`)
  return room => pattern.test(room)
}

/**
 * Validate the messages of some rooms with a Standard Schema (Zod, Valibot, ArkType, …): each
 * message must be JSON that the schema accepts, else the sender gets `bad_request` with the
 * schema's issues and nothing is stored. What is stored is the schema's output (defaults and
 * transforms applied). Call it from a Nitro plugin; the first registered schema that matches a
 * room wins. Returns the schema, so `InferChatPayload<typeof schema>` types the client.
 */
export function defineChatSchema<Schema extends StandardSchemaV1>(rooms: ChatRoomMatcher, schema: Schema): Schema {
  if (!schema || typeof schema['~standard']?.validate !== 'function') throw new TypeError('[nuxt-chat] defineChatSchema needs a Standard Schema (Zod, Valibot, ArkType, …)')
  registry.push({ matches: toMatcher(rooms), schema })
  return schema
}

/** Forget every registered schema (tests). */
export function clearChatSchemas(): void {
  registry.length = 0
}

/** The schema that governs `room`, if any. */
export function chatSchemaOf(room: string): StandardSchemaV1 | undefined {
  return registry.find(entry => entry.matches(room))?.schema
}

/** Issues as one line: `path: message; path: message`. */
export function describeIssues(issues: ReadonlyArray<StandardSchemaV1.Issue>): string {
  const text = issues.map((issue) => {
    const path = issue.path?.map(segment => typeof segment === 'object' ? String(segment.key) : String(segment)).join('.')
    return path ? `${path}: ${issue.message}` : issue.message
  }).join('; ')
  return text.length > MAX_ISSUES_TEXT ? `${text.slice(0, MAX_ISSUES_TEXT - 1)}…` : text
}

/**
 * Check a message against its room's schema: rooms without one pass it unchanged; in a room
 * with one, the text must parse as JSON and pass the schema, and the schema's output is stored.
 */
export async function checkChatPayload(room: string, text: string): Promise<ChatPayloadCheck> {
  const schema = chatSchemaOf(room)
  if (!schema) return { text }
  let value: unknown
  try {
    value = JSON.parse(text)
  }
  catch {
    return { error: 'Message must be JSON in this room' }
  }
  let result: StandardSchemaV1.Result<unknown>
  try {
    result = await schema['~standard'].validate(value)
  }
  catch (error) {
    // A schema that throws would throw again on a retry: the sender is told, the operator warned.
    chatLogger.error(`[nuxt-chat] the schema of room "${room}" threw`, error)
    return { error: 'Message could not be validated' }
  }
  if (result.issues) return { error: describeIssues(result.issues) || 'Message does not match the room\'s schema' }
  const stored = JSON.stringify(result.value)
  return stored === undefined ? { error: 'Message does not match the room\'s schema' } : { text: stored }
}
