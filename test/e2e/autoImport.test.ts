/**
 * `chat.autoImport` renames or turns off the composable's auto-import (for apps that also
 * auto-import the AI SDK's or TanStack AI's `useChat`), read from what `nuxi prepare` generates.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const fixture = fileURLToPath(new URL('../fixtures/auto-import', import.meta.url))
const nuxi = fileURLToPath(new URL('../../node_modules/@nuxt/cli/bin/nuxi.mjs', import.meta.url))

/** The auto-import declarations and tsconfig `nuxi prepare` writes for this `autoImport` value. */
function prepare(autoImport?: string) {
  const env = { ...process.env, NUXT_TELEMETRY_DISABLED: '1', CHAT_AUTO_IMPORT: autoImport }
  execFileSync(process.execPath, [nuxi, 'prepare', fixture], { env, stdio: 'pipe' })
  const buildDir = `${fixture}/.nuxt-${autoImport ?? 'default'}`
  return { imports: readFileSync(`${buildDir}/types/imports.d.ts`, 'utf8'), tsconfig: readFileSync(`${buildDir}/tsconfig.json`, 'utf8') }
}

describe('chat.autoImport', () => {
  it('auto-imports useChat by default', () => {
    expect(prepare().imports).toMatch(/const useChat: typeof import\('[^']*\/runtime\/app\/composables\/useChat'\)\.useChat/)
  })

  it('renames it', () => {
    const { imports } = prepare('useLiveChat')
    expect(imports).toMatch(/const useLiveChat: typeof import\('[^']*\/runtime\/app\/composables\/useChat'\)\.useChat/)
    expect(imports).not.toMatch(/const useChat:/)
  })

  it('turns it off, and #chat still imports it', () => {
    const { imports, tsconfig } = prepare('false')
    expect(imports).not.toMatch(/composables\/useChat'/)
    expect(JSON.parse(tsconfig).compilerOptions.paths['#chat'][0]).toMatch(/runtime\/app\/composables\/useChat$/)
  })
})
