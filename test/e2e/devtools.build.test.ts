/**
 * The DevTools tab is dev only: the production builds that globalSetup made (the fixture and the
 * playground) contain none of its page, routes or code.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

/** Strings only the tab's code holds: its route, its page's title, its stream and post handlers. */
const TAB_MARKERS = ['__nuxt_chat/devtools', 'nuxt-chat DevTools', 'devtoolsSnapshot', 'Post into the room as the server']

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? filesUnder(path) : [path]
  })
}

const builds = {
  fixture: fileURLToPath(new URL(`../fixtures/basic/${process.env.CHAT_FIXTURE_OUT || '.output'}`, import.meta.url)),
  playground: fileURLToPath(new URL(`../../playground/${process.env.CHAT_PLAYGROUND_OUT || '.output'}`, import.meta.url)),
}

describe('a production build', () => {
  it('the markers are really in the tab\'s source (so the search below would find them)', () => {
    const source = ['../../src/devtools.ts', '../../src/runtime/server/devtools/page.ts', '../../src/runtime/server/devtools/status.ts', '../../src/runtime/server/devtools/events.get.ts']
      .map(path => readFileSync(fileURLToPath(new URL(path, import.meta.url)), 'utf8')).join('\n')
    for (const marker of TAB_MARKERS) expect(source).toContain(marker)
  })

  for (const [name, dir] of Object.entries(builds)) {
    it(`of the ${name} holds none of the DevTools tab`, () => {
      expect(existsSync(join(dir, 'server/index.mjs'))).toBe(true)
      const files = filesUnder(dir).filter(path => /\.(?:m?js|json|html|css)$/.test(path))
      expect(files.length).toBeGreaterThan(10)
      const found = files.flatMap((path) => {
        const text = readFileSync(path, 'utf8')
        return TAB_MARKERS.filter(marker => text.includes(marker)).map(marker => `${path}: ${marker}`)
      })
      expect(found).toEqual([])
    })
  }
})
