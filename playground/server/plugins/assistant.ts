/**
 * An AI member: "Assistant" joins every room of the playground and answers when someone
 * mentions `@Assistant`, streaming its reply into the room for everyone (docs/use-chat-server.md,
 * "AI members"). It runs offline on a scripted model (the AI SDK's MockLanguageModelV3); for a
 * real one, replace `scriptedModel(...)` below with a provider's model, e.g. `openai('gpt-4o-mini')`
 * from `@ai-sdk/openai`, and the answers come from it.
 */
import { simulateReadableStream, streamText, type ModelMessage } from 'ai'
import { MockLanguageModelV3 } from 'ai/test'

const ASSISTANT = { id: 'assistant', name: 'Assistant' }
/** Rooms the assistant was made a member of by this instance. */
const joined = new Set<string>()

/** A deterministic model: it answers the last message word by word, 50 ms apart. */
function scriptedModel(messages: ModelMessage[]) {
  const last = messages.at(-1)
  const asked = typeof last?.content === 'string' ? last.content.replace(/^[^:]*: /, '').replace(/@Assistant\s*/i, '') : ''
  const answer = `You asked: “${asked.slice(0, 200)}”. I am the playground's scripted assistant, running offline: I read the last ${messages.length} messages of this room, and every member watches this reply being written, one word at a time, over WebSocket or SSE alike. Plug in a real model with one line in playground/server/plugins/assistant.ts.`
  const words = answer.split(/(?= )/)
  return new MockLanguageModelV3({
    doStream: async () => ({
      stream: simulateReadableStream({
        initialDelayInMs: 200,
        chunkDelayInMs: 50,
        chunks: [
          { type: 'text-start', id: 'answer' },
          ...words.map(delta => ({ type: 'text-delta' as const, id: 'answer', delta })),
          { type: 'text-end', id: 'answer' },
          { type: 'finish', finishReason: { unified: 'stop', raw: undefined }, usage: { inputTokens: { total: 0, noCache: 0, cacheRead: undefined, cacheWrite: undefined }, outputTokens: { total: words.length, text: words.length, reasoning: undefined } } },
        ] as never[],
      }),
    }),
  })
}

export default defineNitroPlugin((nitroApp) => {
  // A member of every room someone joins (not direct rooms), so `@Assistant` mentions it.
  nitroApp.hooks.hook('chat:join', ({ room }) => {
    if (joined.has(room) || room.startsWith('dm:')) return
    joined.add(room)
    useChatServer().addAiMember(room, ASSISTANT).catch(() => joined.delete(room))
  })

  nitroApp.hooks.hook('chat:mention', async ({ room, uid, frame }) => {
    if (uid !== ASSISTANT.id) return
    const chat = useChatServer()
    const messages = await chat.aiMessages(room, { as: ASSISTANT, thread: frame.thread, limit: 12 })
    // Whoever asked (or a moderator) may stop it: the signal reaches the model call.
    await chat.stream(room, signal => streamText({ model: scriptedModel(messages), messages, abortSignal: signal }), { as: ASSISTANT, replyTo: frame.id, thread: frame.thread })
  })
})
