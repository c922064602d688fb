import { describe, expect, it } from 'vitest'
import { deploymentChannel } from '../../src/runtime/server/utils/bus'
import { channelOptions, connectorOptions, databaseForBuild, databaseProblem, holdsPassword } from '../../src/runtime/server/utils/databaseConfig'

describe('the database settings a build writes', () => {
  it('give SQLite its default file under the app\'s root, and no other connector any of it', () => {
    expect(databaseForBuild({ connector: 'node-sqlite' }, '/app')).toEqual({ connector: 'node-sqlite', url: '', options: { path: '.data/chat.sqlite', cwd: '/app' } })
    expect(databaseForBuild({ connector: 'better-sqlite3', options: { path: 'x.db' } }, '/app').options).toEqual({ path: 'x.db', cwd: '/app' })
    for (const connector of ['postgresql', 'libsql', 'pglite']) {
      const { options } = databaseForBuild({ connector, options: { ssl: true } }, '/app')
      expect(options).not.toHaveProperty('path')
      expect(options).not.toHaveProperty('cwd')
      expect(options.ssl).toBe(true)
    }
  })

  it('hold a `url` key for every connector and an `options.url` key for a URL connector (Nitro overrides only keys the build has)', () => {
    // `process.env.DATABASE_URL` unset at build time: the README's old snippet gave `url: undefined`.
    expect(databaseForBuild({ connector: 'postgresql', options: { url: undefined } }, '/app')).toEqual({ connector: 'postgresql', url: '', options: { url: '' } })
    expect(databaseForBuild({ connector: 'libsql' }, '/app').options).toEqual({ url: '' })
    expect(databaseForBuild({ connector: 'pglite' }, '/app')).toEqual({ connector: 'pglite', url: '', options: {} })
  })

  it('tell when they would build a password into .output (module setup warns)', () => {
    expect(holdsPassword({ connector: 'postgresql', options: { url: 'postgresql://chat:s3cret@db/chat' } })).toBe(true)
    expect(holdsPassword({ connector: 'postgresql', options: { host: 'db', password: 's3cret' } })).toBe(true)
    expect(holdsPassword({ connector: 'postgresql', options: { connectionString: 'postgresql://chat:s3cret@db/chat' } })).toBe(true)
    expect(holdsPassword({ connector: 'postgresql', options: { url: 'postgresql://postgres@127.0.0.1:5432/test' } })).toBe(false)
    expect(holdsPassword({ connector: 'postgresql', url: '', options: { url: '' } })).toBe(false)
  })
})

describe('the database settings the server opens', () => {
  it('take NUXT_CHAT_DATABASE_URL over options.url, and leave an empty URL out', () => {
    expect(connectorOptions({ connector: 'postgresql', url: 'postgresql://run/time', options: { url: 'postgresql://build/time', ssl: true } })).toEqual({ url: 'postgresql://run/time', ssl: true })
    expect(connectorOptions({ connector: 'postgresql', url: '', options: { url: 'postgresql://options/url' } })).toEqual({ url: 'postgresql://options/url' })
    // db0 hands `url` alone to pg when the key is there: an empty one must not hide `host`.
    expect(connectorOptions({ connector: 'postgresql', url: '', options: { url: '', host: 'db', user: 'chat' } })).toEqual({ host: 'db', user: 'chat' })
  })

  it('stop a server database with nowhere to connect to, and a URL given to a SQLite file, with one line each', () => {
    const noUrl = databaseProblem({ connector: 'postgresql', url: '', options: { url: '' } }, {})
    expect(noUrl).toMatch(/^\[nuxt-chat\] .*"postgresql".*NUXT_CHAT_DATABASE_URL/)
    expect(noUrl).not.toContain('\n')
    expect(databaseProblem({ connector: 'libsql', url: '', options: { url: '' } }, {})).toMatch(/"libsql".*NUXT_CHAT_DATABASE_URL/)
    expect(databaseProblem({ connector: 'node-sqlite', url: 'postgresql://db/chat', options: { path: 'x' } }, {})).toMatch(/"node-sqlite".*NUXT_CHAT_DATABASE_OPTIONS_PATH/)
    expect(databaseProblem({ connector: 'node-sqlite', url: '', options: { path: 'x', url: 'postgresql://db/chat' } }, {})).toMatch(/"node-sqlite"/)
  })

  it('let every way pg itself connects through', () => {
    const pg = (options: Record<string, unknown>, url = '') => databaseProblem({ connector: 'postgresql', url, options }, {})
    expect(pg({}, 'postgresql://db/chat')).toBeUndefined()
    expect(pg({ url: 'postgresql://db/chat' })).toBeUndefined()
    expect(pg({ connectionString: 'postgresql://db/chat' })).toBeUndefined()
    expect(pg({ host: 'db', user: 'chat' })).toBeUndefined()
    expect(databaseProblem({ connector: 'postgresql', url: '', options: { url: '' } }, { PGHOST: 'db' })).toBeUndefined()
    expect(databaseProblem({ connector: 'node-sqlite', url: '', options: { path: '.data/chat.sqlite' } }, {})).toBeUndefined()
    expect(databaseProblem({ connector: 'pglite', url: '', options: {} }, {})).toBeUndefined()
  })

  it('derive the Redis channel an older build of the same PostgreSQL deployment derives (rolling deploys share the bus)', () => {
    const url = 'postgresql://db/chat'
    // What earlier builds ran with: SQLite's default path merged into PostgreSQL's options.
    const older = deploymentChannel({ storage: 'database', connector: 'postgresql', options: { path: '.data/chat.sqlite', url } }, '/srv')
    expect(deploymentChannel({ storage: 'database', connector: 'postgresql', options: channelOptions({ connector: 'postgresql', url, options: { url: '' } }) }, '/srv')).toBe(older)
    expect(deploymentChannel({ storage: 'database', connector: 'postgresql', options: channelOptions({ connector: 'postgresql', url: '', options: { url } }) }, '/srv')).toBe(older)
    expect(deploymentChannel({ storage: 'database', connector: 'postgresql', options: channelOptions({ connector: 'postgresql', url: 'postgresql://db/other', options: {} }) }, '/srv')).not.toBe(older)
  })
})
