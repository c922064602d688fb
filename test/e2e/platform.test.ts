/**
 * A Node.js that cannot run the configured store stops `nuxi build` and `nuxi dev` at module
 * setup with one line naming the version it needs (the built server's own check is in
 * package.test.ts). Uses the machine's Node 20.
 */
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { oldNode } from '../utils/oldNode'

const root = fileURLToPath(new URL('../..', import.meta.url))
const nuxi = fileURLToPath(new URL('../../node_modules/@nuxt/cli/bin/nuxi.mjs', import.meta.url))

describe('a Node.js without node:sqlite', () => {
  const node = oldNode()

  it.each([
    ['nuxi build', ['build', 'test/fixtures/basic']],
    ['nuxi dev', ['dev', 'test/fixtures/basic', '--port', '0', '--no-fork']],
  ])('%s stops at module setup with one line naming the version', (_, args) => {
    expect(node, 'a Node.js < 22.5 on this machine (the system Node 20)').toBeTruthy()
    const result = spawnSync(node!, [nuxi, ...args], {
      cwd: root,
      // Its own output directories: the real build of the fixture is not touched.
      env: { ...process.env, CHAT_FIXTURE_OUT: '.output-old-node', NUXT_TELEMETRY_DISABLED: '1' },
      encoding: 'utf8',
      timeout: 60_000,
    })
    const output = `${result.stdout}${result.stderr}`
    expect(result.status, output).toBe(1)
    const errors = output.split('\n').filter(line => /error|^\s+at /i.test(line))
    expect(errors).toHaveLength(1)
    expect(errors[0]).toMatch(/\[nuxt-chat\] .*needs Node\.js >= 22\.5; this is Node\.js v2[01]\./)
  })
})
