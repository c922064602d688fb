import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8')

describe('README quick setup', () => {
  it('shows exactly the page the browser test loads (test/fixtures/readme/app/pages/index.vue)', () => {
    const block = /```vue\n<!-- app\/pages\/index\.vue -->\n([\s\S]*?)```/.exec(read('README.md'))
    expect(block).not.toBeNull()
    expect(block![1]).toBe(read('test/fixtures/readme/app/pages/index.vue'))
  })
})
