/**
 * A bot posting from a server route with `useChatServer()`: no WebSocket, no peer.
 *
 *   curl -X POST localhost:3000/api/bot -H 'content-type: application/json' -d '{"room":"chat"}'
 *
 * `{ room }` posts a greeting; `{ room, count: 100 }` posts numbered messages instead (to try
 * loading older history): only under `nuxt dev`, or with `NUXT_BOT_BULK=true` (the browser
 * tests), so that a deployed playground is no flooding service. `useChatServer`, like h3's
 * helpers, is auto-imported in server code.
 */
const BOT = { id: 'bot', name: 'Bot' }
const MAX_COUNT = 200

export default defineEventHandler(async (event) => {
  const body = await readBody<{ room?: unknown, count?: unknown }>(event).catch(() => undefined)
  const { room, count = 1 } = body ?? {}
  if (typeof room !== 'string') throw createError({ statusCode: 400, statusMessage: 'Send JSON with a room: { "room": "chat" }' })
  if (typeof count !== 'number' || !Number.isInteger(count) || count < 1 || count > MAX_COUNT) throw createError({ statusCode: 400, statusMessage: `count must be 1-${MAX_COUNT}` })
  if (count > 1 && !import.meta.dev && !useRuntimeConfig(event).botBulk) throw createError({ statusCode: 403, statusMessage: 'count is for nuxt dev only (or set NUXT_BOT_BULK=true)' })

  const chat = useChatServer()
  if (count === 1) {
    const online = (await chat.presence(room)).length
    const message = await chat.send(room, `Hello from a server route! ${online} ${online === 1 ? 'person is' : 'people are'} online in #${room}.`, { user: BOT })
    return { ids: [message.id] }
  }
  // One after another, so the ids follow the numbers.
  const ids: number[] = []
  for (let i = 1; i <= count; i++) ids.push((await chat.send(room, `Bot message ${i} of ${count}`, { user: BOT })).id)
  return { ids }
})
