// Web Push row (issue 25): an `@room` mention in a room of N away members, each with one
// subscription, through the server's own push service (src/runtime/server/push/pushService.ts:
// batching, store reads, chat:notify, aes128gcm encryption, VAPID JWT, POST) to a push service on
// loopback that answers 201. Reports the time until every push arrived, CPU per push and the
// longest event-loop stall. Imports the TypeScript source through jiti.
//   node bench/push.mjs [members]
import { createECDH, randomBytes } from 'node:crypto'
import { createServer } from 'node:http'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import { createHooks } from 'hookable'
import { createJiti } from 'jiti'

const jiti = createJiti(import.meta.url)
const { createMemoryRoomLog } = await jiti.import('../src/runtime/server/utils/roomLog.memory.ts')
const { createChatPush } = await jiti.import('../src/runtime/server/push/pushService.ts')
const webpush = (await import('web-push')).default

const MEMBERS = Number(process.argv[2]) || 2000
let received = 0
let allIn
const done = new Promise(resolve => allIn = resolve)
const server = createServer((request, response) => {
  request.resume()
  request.on('end', () => {
    response.writeHead(201).end()
    if (++received === MEMBERS) allIn()
  })
})
await new Promise(resolve => server.listen(0, '127.0.0.1', resolve))
const origin = `http://127.0.0.1:${server.address().port}`

const store = createMemoryRoomLog()
const keys = webpush.generateVAPIDKeys()
const quiet = { info() {}, warn: console.warn, error: console.error }
const hooks = createHooks()
const push = createChatPush({
  options: { route: '/_chat/push', vapidPublicKey: keys.publicKey, vapidPrivateKey: keys.privateKey, subject: 'mailto:bench@example.test', window: 50, maxLength: 120, maxSubscriptions: 10, maxMutes: 500, ttl: 60, url: '/?room={room}', insecureLoopback: true },
  store, hooks, logger: quiet, redisUrl: '', channel: 'bench', presenceInterval: 5000,
})
for (let i = 0; i < MEMBERS; i++) {
  const ecdh = createECDH('prime256v1')
  ecdh.generateKeys()
  await store.pushSubscribe({ uid: `user-${i}`, endpoint: `${origin}/push/${i}`, p256dh: ecdh.getPublicKey().toString('base64url'), auth: randomBytes(16).toString('base64url'), createdAt: i }, 10)
}
const frame = { type: 'message', room: 'bench-room', id: 1, user: 'Ann', uid: 'user-ann', message: `@room ${'x'.repeat(200)}`, ts: Date.now() }
const stalls = monitorEventLoopDelay({ resolution: 5 })
stalls.enable()
const cpu = process.cpuUsage()
const started = performance.now()
for (let i = 0; i < MEMBERS; i++) await hooks.callHook('chat:mention', { room: frame.room, uid: `user-${i}`, frame })
await done
const elapsed = performance.now() - started
const used = process.cpuUsage(cpu)
stalls.disable()
console.log(`${process.version}: @room to ${MEMBERS} away members: all ${received} pushes in ${elapsed.toFixed(0)} ms (window 50 ms), ${((used.user + used.system) / 1000 / MEMBERS).toFixed(2)} ms CPU per push (sender and receiver in one process), longest event-loop stall ${(stalls.max / 1e6).toFixed(1)} ms`)
await push.close()
await store.close()
server.close()
