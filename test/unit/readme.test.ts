/**
 * The paste-able blocks of the README and the docs/ pages (those whose first line names a file) are the files of
 * test/fixtures/readme-snippets, which test/e2e/readme.test.ts type-checks, builds and runs;
 * its nuxt.config.ts block is the one test/e2e/package.test.ts installs the packed module with.
 */
import { existsSync, readFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { markdownPages, readmeBlocks, readmeFiles } from '../utils/readme'

const fixture = fileURLToPath(new URL('../fixtures/readme-snippets/', import.meta.url))
const root = fileURLToPath(new URL('../../', import.meta.url))
// A fenced code block: its headings and links are code, not Markdown.
const FENCED = /^```[^\n]*\n[\s\S]*?^```$/gm

describe('README.md and docs/*.md', () => {
  const files = readmeFiles()

  it('names the files its blocks are pasted into', () => {
    expect([...files.keys()].sort()).toEqual([
      'app/pages/files.vue', 'app/pages/index.vue', 'app/pages/notifications.vue', 'app/pages/older.vue', 'app/pages/poll.vue', 'app/pages/reactions.vue', 'app/pages/rooms.vue', 'app/pages/team.vue', 'app/pages/unread.vue', 'nuxt.config.ts', 'server/api/deploy-hook.post.ts', 'server/plugins/chat-auth.ts', 'server/plugins/chat-notify.ts', 'server/plugins/chat-schemas.ts', 'server/plugins/chat-webhook.ts', 'server/plugins/chat.ts', 'shared/poll.ts', 'shared/types/auth.d.ts',
    ])
  })

  it('names the file of every page or component it shows, so the fixture type-checks and renders each one', () => {
    const unnamed = readmeBlocks().filter(block => block.lang === 'vue' && !block.file).map(block => block.code.split('\n').slice(0, 3).join('\n'))
    expect(unnamed).toEqual([])
  })

  it.each([...files.keys()].filter(file => file !== 'nuxt.config.ts'))('%s is the fixture\'s file, word for word', (file) => {
    expect(existsSync(`${fixture}${file}`)).toBe(true)
    expect(files.get(file)).toBe(readFileSync(`${fixture}${file}`, 'utf8'))
  })

  it('reads the README and every docs/ page, and refuses two different blocks for one file', () => {
    expect(markdownPages()).toContain('README.md')
    expect(markdownPages()).toContain('docs/PROTOCOL.md')
    const block = (page: string, code: string) => ({ lang: 'ts', code, file: 'server/plugins/a.ts', page })
    expect(readmeFiles([block('README.md', '// server/plugins/a.ts\n'), block('docs/a.md', '// server/plugins/a.ts\n')]).size).toBe(1)
    expect(() => readmeFiles([block('README.md', '// server/plugins/a.ts\n'), block('docs/a.md', '// server/plugins/a.ts\nexport {}\n')]))
      .toThrow('README.md and docs/a.md have different blocks for server/plugins/a.ts')
  })

  it('links only to files and headings that exist', () => {
    // GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes, repeats numbered.
    const anchorsOf = (text: string) => {
      const seen = new Map<string, number>()
      return new Set([...text.replace(FENCED, '').matchAll(/^#{1,6} (.+)$/gm)].map(([, heading]) => {
        const slug = heading!.trim().toLowerCase().replace(/[^\p{L}\p{N}_\- ]/gu, '').replace(/ /g, '-')
        const count = seen.get(slug) ?? 0
        seen.set(slug, count + 1)
        return count ? `${slug}-${count}` : slug
      }))
    }
    const broken: string[] = []
    for (const page of markdownPages()) {
      const text = readFileSync(`${root}${page}`, 'utf8')
      for (const [, target] of text.replace(FENCED, '').matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/.test(target!)) continue
        const [path, anchor] = target!.split('#') as [string, string | undefined]
        const file = path ? `${dirname(`${root}${page}`)}/${path}` : `${root}${page}`
        if (!existsSync(file)) broken.push(`${page}: ${target}`)
        else if (anchor && file.endsWith('.md') && !anchorsOf(readFileSync(file, 'utf8')).has(anchor)) broken.push(`${page}: ${target}`)
      }
    }
    expect(broken).toEqual([])
  })

  it('installs the module with nothing but modules: [\'nuxt-chat\']', () => {
    expect(files.get('nuxt.config.ts')).toBe(`// nuxt.config.ts\nexport default defineNuxtConfig({\n  modules: ['nuxt-chat'],\n})\n`)
  })

  it('configures PostgreSQL as test/fixtures/readme-postgres builds it (test/e2e/runtimeDatabase.test.ts runs it), with its URL at run time only', () => {
    const blocks = readmeBlocks()
    const postgres = blocks.filter(block => block.lang === 'ts' && block.code.includes('connector: \'postgresql\''))
    expect(postgres.length).toBeGreaterThan(0)
    const built = readFileSync(fileURLToPath(new URL('../fixtures/readme-postgres/nuxt.config.ts', import.meta.url)), 'utf8')
    for (const block of postgres) expect(built).toContain(block.code.trim())
    expect(blocks.some(block => block.lang === 'sh' && /^NUXT_CHAT_DATABASE_URL=postgresql:\/\//m.test(block.code))).toBe(true)
    // A URL written into nuxt.config is built into .output (and empty when the variable is set only at run time).
    expect(blocks.filter(block => /DATABASE_URL|options: \{ url/.test(block.code) && block.lang !== 'sh')).toEqual([])
  })

  it('imports no package an app does not declare (h3, cookie-es come only through Nuxt)', () => {
    const imports = readmeBlocks()
      .filter(block => ['ts', 'vue'].includes(block.lang))
      .flatMap(block => [...block.code.matchAll(/\bfrom\s+'([^']+)'/g)].map(match => match[1]))
    // Relative paths are the app's own files; packages must be ones the fixture app declares (valibot for a room schema).
    const declared = Object.keys(JSON.parse(readFileSync(`${fixture}package.json`, 'utf8')).dependencies)
    expect(imports.filter(name => !/^(?:#|\.|~~\/)/.test(name!) && !declared.includes(name!))).toEqual([])
    expect(imports).not.toContain('h3')
    expect(imports).not.toContain('cookie-es')
  })
})
