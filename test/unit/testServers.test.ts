import { describe, expect, it } from 'vitest'
import { vapidKeys } from '../utils/pushReceiver'
import { POSTGRES_URL, sharedDatabaseRetention, startServer } from '../utils/server'

/**
 * Issue 22 (flaky "de-duplicates a cid across a server crash" on PostgreSQL): a test server with
 * retention on the shared `test` database pruned the rooms of tests running in other files, so a
 * replay after cursor 0 began at the one message retention had not reached yet (with `rev`).
 */
describe('test servers never run retention on the shared PostgreSQL database', () => {
  it('refuses history.max or maxAge with an interval on the shared database, and allows it elsewhere', () => {
    const maxAge = { NUXT_CHAT_HISTORY_MAX_AGE: '400', NUXT_CHAT_HISTORY_INTERVAL: '100' }
    const max = { NUXT_CHAT_HISTORY_MAX: '10', NUXT_CHAT_HISTORY_INTERVAL: '100' }
    expect(sharedDatabaseRetention({ output: 'postgresql', env: maxAge })).toMatch(/database of its own/)
    expect(sharedDatabaseRetention({ output: 'postgresql', env: max })).toMatch(/database of its own/)
    expect(sharedDatabaseRetention({ output: 'sqlite', env: { ...max, NUXT_CHAT_DATABASE_OPTIONS_URL: POSTGRES_URL } })).toMatch(/database of its own/)
    expect(sharedDatabaseRetention({ output: 'postgresql', env: { ...max, NUXT_CHAT_DATABASE_OPTIONS_URL: POSTGRES_URL.replace(/test$/, 'own_1') } })).toBeUndefined()
    expect(sharedDatabaseRetention({ output: 'postgresql', env: { ...max, NUXT_CHAT_HISTORY_INTERVAL: '0' } })).toBeUndefined()
    expect(sharedDatabaseRetention({ output: 'sqlite', env: maxAge })).toBeUndefined()
    expect(sharedDatabaseRetention({ output: 'postgresql', env: { NUXT_CHAT_RATE_LIMIT: 'false' } })).toBeUndefined()
  })

  it('startServer refuses such a server before it starts', async () => {
    // A bound no test room reaches: were it started (the old helper), it would prune nothing of anyone's.
    const outcome = await startServer({ output: 'postgresql', env: { NUXT_CHAT_HISTORY_MAX: '1000000', NUXT_CHAT_HISTORY_INTERVAL: '60000' } })
      .then(server => server.stop('SIGKILL').then(() => 'started'), (error: Error) => error.message)
    expect(outcome).toMatch(/database of its own/)
  })
})

/**
 * The push suites failed together about once in 370 runs: ECDH's private key loses its leading
 * zero bytes, web-push refuses a key that is not 32 bytes, and the test server ran with push off.
 */
describe('test VAPID keys', () => {
  it('are always a 32-byte private key and a 65-byte public point', () => {
    for (let i = 0; i < 2000; i++) {
      const { publicKey, privateKey } = vapidKeys()
      expect(Buffer.from(privateKey, 'base64url')).toHaveLength(32)
      expect(Buffer.from(publicKey, 'base64url')).toHaveLength(65)
    }
  })
})
