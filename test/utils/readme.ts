import { readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/** A fenced code block of the README or of a docs/ page. */
export interface ReadmeBlock {
  lang: string
  code: string
  /** The file it is meant to be pasted into, named by its first line (`// server/plugins/chat.ts`, `<!-- app/pages/index.vue -->`). */
  file?: string
  /** The Markdown file it is in, relative to the repository (`README.md`, `docs/use-chat.md`). */
  page: string
}

const FILE_COMMENT = /^(?:\/\/|<!--)\s*([\w./-]+\.(?:ts|vue))(?:\s*-->)?\s*$/
const root = fileURLToPath(new URL('../../', import.meta.url))

/** The Markdown files whose snippets are compiled: README.md and the pages of docs/ (not docs/design's drafts). */
export function markdownPages(): string[] {
  return ['README.md', ...readdirSync(`${root}docs`).filter(name => name.endsWith('.md')).sort().map(name => `docs/${name}`)]
}

/** Every fenced code block of README.md and docs/*.md, page by page, in order. */
export function readmeBlocks(): ReadmeBlock[] {
  return markdownPages().flatMap((page) => {
    const text = readFileSync(`${root}${page}`, 'utf8')
    return [...text.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map(([, lang, code]) => ({
      lang: lang!,
      code: code!,
      file: FILE_COMMENT.exec(code!.split('\n', 1)[0]!)?.[1],
      page,
    }))
  })
}

/** The blocks meant to be pasted into a file of an app, by file; two different blocks for one file are an error. */
export function readmeFiles(blocks = readmeBlocks()): Map<string, string> {
  const files = new Map<string, string>()
  const firstPage = new Map<string, string>()
  for (const block of blocks) {
    if (!block.file) continue
    if (files.has(block.file) && files.get(block.file) !== block.code) throw new Error(`${firstPage.get(block.file)} and ${block.page} have different blocks for ${block.file}`)
    files.set(block.file, block.code)
    if (!firstPage.has(block.file)) firstPage.set(block.file, block.page)
  }
  return files
}
