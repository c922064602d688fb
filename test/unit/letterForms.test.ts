import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { LETTER_FORMS, LETTER_FORMS_UNICODE_VERSION } from '../../src/runtime/server/utils/letterForms'

const script = fileURLToPath(new URL('../../scripts/letter-forms.py', import.meta.url))
const committed = readFileSync(fileURLToPath(new URL('../../src/runtime/server/utils/letterForms.ts', import.meta.url)), 'utf8')
const python = (args: string[]) => execFileSync('python3', args, { encoding: 'utf8', maxBuffer: 8 << 20 })

describe('letter forms table', () => {
  it('is what scripts/letter-forms.py generates from the same Unicode version', () => {
    const version = python(['-c', 'import unicodedata; print(unicodedata.unidata_version)']).trim()
    const generated = python([script])
    if (version === LETTER_FORMS_UNICODE_VERSION) {
      expect(generated).toBe(committed)
    }
    else {
      // Another Unicode version adds letters: every letter both versions know maps the same.
      const entries = (text: string) => new Map([...text.matchAll(/^ {2}'(\\u\{[0-9A-F]+\})': '(.+?)',/gmu)].map(([, key, value]) => [key, value]))
      const ours = entries(committed)
      const common = [...entries(generated)].filter(([key]) => ours.has(key))
      expect(common.length).toBeGreaterThan(ours.size * 0.9)
      for (const [key, value] of common) expect(ours.get(key), key).toBe(value)
    }
  })

  it('maps the letter forms the review found to their base letters', () => {
    expect(Object.keys(LETTER_FORMS).length).toBeGreaterThan(300)
    for (const [form, base] of [['\u2C61', 'l'], ['\u2C60', 'L'], ['\u1D85', 'l'], ['\u026C', 'l'], ['\uA749', 'l'], ['\uA7A8', 'S'], ['\uA75E', 'V'], ['\u029F', 'l'], ['\uA7AF', 'q'], ['\u1D0C', 'l']]) {
      expect(LETTER_FORMS[form!], form).toBe(base)
    }
  })
})
