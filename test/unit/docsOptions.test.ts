/**
 * docs/configuration.md's options reference is generated from the code (scripts/docs-options.ts):
 * this fails when the checked-in page is not what the script makes now, or when an option's
 * JSDoc `@default` says something else than src/runtime/defaults.ts.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { CONFIGURATION_PAGE, formatDefault, optionDocs, renderOptionsReference, withReference } from '../../scripts/docs-options'
import { chatDefaults } from '../../src/runtime/defaults'
import { envKey } from '../../src/runtime/server/utils/envOverrides'

const page = readFileSync(fileURLToPath(new URL(`../../${CONFIGURATION_PAGE}`, import.meta.url)), 'utf8')

describe('the generated options reference', () => {
  it(`${CONFIGURATION_PAGE} is current (else run npm run docs:options)`, () => {
    expect(page).toBe(withReference(page))
  })

  it('has a row for every option of the defaults, with its default and its variable', () => {
    const reference = renderOptionsReference()
    for (const [name, value] of Object.entries(chatDefaults)) {
      expect(reference).toContain(`| \`${name}\` |`)
      expect(reference).toContain(`\`${formatDefault(value).replace(/\|/g, '\\|')}\``)
    }
    expect(reference).toContain('`NUXT_CHAT_MAX_CONNECTIONS_PER_IP`')
    expect(reference).toContain('`NUXT_CHAT_RATE_LIMIT_PER_IP_BURST`')
    expect(reference).toContain('`NUXT_CHAT_DATABASE_OPTIONS_*`')
    expect(envKey('maxConnectionsPerIp')).toBe('MAX_CONNECTIONS_PER_IP')
  })

  it('every option and field has JSDoc, and its @default is the default the module runs with', () => {
    for (const doc of optionDocs()) {
      expect(doc.text, doc.name).not.toBe('')
      expect(doc.documentedDefault, doc.name).toBe(formatDefault(chatDefaults[doc.name as keyof typeof chatDefaults]))
      for (const field of doc.members ?? []) expect(field.text, `${doc.name}.${field.name}`).not.toBe('')
    }
  })

  it('refuses a page without its markers', () => {
    expect(() => withReference('# Configuration\n')).toThrow('has no <!-- options:start -->')
  })
})
