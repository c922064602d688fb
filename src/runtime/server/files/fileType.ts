import { fileTypeFromBuffer } from 'file-type'
import { imageSize } from 'image-size'

/** What a file's bytes say it is: its MIME type and, for an image, its size in pixels. */
export interface SniffedFile {
  type: string
  width?: number
  height?: number
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * The type of `bytes`, from their signature (`file-type`), never from a name or a declared
 * `Content-Type`; bytes without a signature that are valid UTF-8 without NUL are `text/plain`
 * (HTML and SVG included: they are served as downloads); anything else `application/octet-stream`.
 */
export async function sniffFile(bytes: Uint8Array): Promise<SniffedFile> {
  const found = await fileTypeFromBuffer(bytes).catch(() => undefined)
  if (!found) return { type: isText(bytes) ? 'text/plain' : 'application/octet-stream' }
  if (!found.mime.startsWith('image/')) return { type: found.mime }
  try {
    const { width, height } = imageSize(bytes)
    return { type: found.mime, width, height }
  }
  catch {
    // A signature without a readable header: the type stands, without a size.
    return { type: found.mime }
  }
}

function isText(bytes: Uint8Array): boolean {
  if (bytes.includes(0)) return false
  try {
    utf8.decode(bytes)
    return true
  }
  catch {
    return false
  }
}
