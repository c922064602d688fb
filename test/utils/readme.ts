import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** A fenced code block of the README. */
export interface ReadmeBlock {
  lang: string
  code: string
  /** The file it is meant to be pasted into, named by its first line (`// server/plugins/chat.ts`, `<!-- app/pages/index.vue -->`). */
  file?: string
}

const FILE_COMMENT = /^(?:\/\/|<!--)\s*([\w./-]+\.(?:ts|vue))(?:\s*-->)?\s*$/

/** Every fenced code block of README.md, in order. */
export function readmeBlocks(): ReadmeBlock[] {
  const text = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8')
  return [...text.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map(([, lang, code]) => ({
    lang: lang!,
    code: code!,
    file: FILE_COMMENT.exec(code!.split('\n', 1)[0]!)?.[1],
  }))
}

/** The README's blocks meant to be pasted into a file of an app, by file. */
export function readmeFiles(): Map<string, string> {
  const files = new Map<string, string>()
  for (const block of readmeBlocks()) {
    if (!block.file) continue
    if (files.has(block.file)) throw new Error(`README.md has two blocks for ${block.file}`)
    files.set(block.file, block.code)
  }
  return files
}
