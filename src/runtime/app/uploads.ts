import { shallowRef, type ShallowRef } from 'vue'
import { MAX_PREVIEW_BYTES, MAX_PREVIEW_SIDE, type ChatErrorFrame, type ChatFile } from '../shared/protocol'
import { backoffDelay, type BackoffOptions } from './backoff'

/** An attachment as the client shows it: a pending one has no `id` yet and a local `url` (an object URL) for its preview. */
export interface ChatMessageFile extends ChatFile {
  /** A file still uploading: an object URL of the local bytes. */
  url?: string
}

/** Where and as whom uploads go (docs/PROTOCOL.md, "Attachments"). */
export interface ChatUploadTarget {
  /** The upload URL with the room and identity parameters (`?room=`, `name`, `guest`). */
  url: () => URL
  retry: BackoffOptions
}

/** A refusal a retry cannot cure (its error frame), or the uploaded files' metadata. */
export type ChatUploadResult = { files: ChatFile[] } | { error: Pick<ChatErrorFrame, 'code' | 'message'> }

// Statuses worth another try: the server or the network may do better later.
const RETRYABLE = new Set([0, 408, 429, 500, 502, 503, 504])

/**
 * Upload `files` one after the other with `XMLHttpRequest` (fetch has no upload progress),
 * reporting the share of all their bytes sent in `progress` (0 to 1). A network failure or a
 * 5xx / 408 / 429 retries that file with backoff; a file that finished is never sent again.
 */
export function uploadFiles(target: ChatUploadTarget, files: readonly Blob[], progress: ShallowRef<number> = shallowRef(0)): Promise<ChatUploadResult> {
  const total = files.reduce((sum, file) => sum + file.size, 0) || 1
  let done = 0
  const uploaded: ChatFile[] = []
  return (async () => {
    for (const file of files) {
      for (let attempt = 0; ; attempt++) {
        const answer = await uploadOne(target.url(), file, loaded => progress.value = Math.min(1, (done + loaded) / total))
        if ('file' in answer) {
          uploaded.push(answer.file)
          break
        }
        if (!RETRYABLE.has(answer.status)) return { error: answer.error }
        await new Promise(resolve => setTimeout(resolve, backoffDelay(attempt, target.retry)))
      }
      done += file.size
      progress.value = Math.min(1, done / total)
    }
    return { files: uploaded }
  })()
}

/** Raster images a browser decodes: their preview is made here, before the upload. */
const PREVIEWED = /^image\/(?:png|jpeg|gif|webp|avif)$/

/** A small WebP (or PNG) of an image, in base64, within the server's bounds; undefined when the browser cannot make one. */
async function previewOf(file: Blob): Promise<string | undefined> {
  if (!PREVIEWED.test(file.type) || typeof createImageBitmap !== 'function' || typeof document === 'undefined') return undefined
  try {
    const bitmap = await createImageBitmap(file)
    const scale = Math.min(1, MAX_PREVIEW_SIDE / Math.max(bitmap.width, bitmap.height))
    const canvas = document.createElement('canvas')
    canvas.width = Math.max(1, Math.round(bitmap.width * scale))
    canvas.height = Math.max(1, Math.round(bitmap.height * scale))
    canvas.getContext('2d')?.drawImage(bitmap, 0, 0, canvas.width, canvas.height)
    bitmap.close()
    for (const quality of [0.6, 0.3]) {
      const blob = await new Promise<Blob | null>(resolve => canvas.toBlob(resolve, 'image/webp', quality))
      if (blob && blob.size <= MAX_PREVIEW_BYTES) return btoa(String.fromCharCode(...new Uint8Array(await blob.arrayBuffer())))
    }
  }
  catch {
    // Not decodable here (a broken or unsupported image): sent without a preview.
  }
  return undefined
}

/** One POST of one file: its metadata, or the status (0: the network failed) and the error. */
async function uploadOne(url: URL, file: Blob, onProgress: (loaded: number) => void): Promise<{ file: ChatFile } | { status: number, error: Pick<ChatErrorFrame, 'code' | 'message'> }> {
  const preview = await previewOf(file)
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest()
    xhr.open('POST', url)
    xhr.withCredentials = true
    const name = (file as File).name || 'file'
    xhr.setRequestHeader('x-file-name', encodeURIComponent(name))
    if (preview) xhr.setRequestHeader('x-file-preview', preview)
    xhr.upload.onprogress = event => onProgress(event.loaded)
    xhr.onload = () => {
      let body: (ChatFile & Partial<ChatErrorFrame>) | undefined
      try {
        body = JSON.parse(xhr.responseText)
      }
      catch {
        // Not JSON (a proxy's page): reported by its status.
      }
      if (xhr.status === 201 && body?.id) return resolve({ file: { id: body.id, name: body.name, size: body.size, type: body.type, ...(body.width === undefined ? {} : { width: body.width, height: body.height }), ...(body.preview?.startsWith('data:image/') ? { preview: body.preview } : {}) } })
      resolve({ status: xhr.status, error: { code: body?.code ?? 'unavailable', message: body?.message ?? `Upload failed (${xhr.status})` } })
    }
    xhr.onerror = () => resolve({ status: 0, error: { code: 'unavailable', message: 'The upload was interrupted' } })
    xhr.send(file)
  })
}
