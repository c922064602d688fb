import { shallowRef, type ShallowRef } from 'vue'
import type { ChatErrorFrame, ChatFile } from '../shared/protocol'
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

/** One POST of one file: its metadata, or the status (0: the network failed) and the error. */
function uploadOne(url: URL, file: Blob, onProgress: (loaded: number) => void): Promise<{ file: ChatFile } | { status: number, error: Pick<ChatErrorFrame, 'code' | 'message'> }> {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest()
    xhr.open('POST', url)
    xhr.withCredentials = true
    const name = (file as File).name || 'file'
    xhr.setRequestHeader('x-file-name', encodeURIComponent(name))
    xhr.upload.onprogress = event => onProgress(event.loaded)
    xhr.onload = () => {
      let body: (ChatFile & Partial<ChatErrorFrame>) | undefined
      try {
        body = JSON.parse(xhr.responseText)
      }
      catch {
        // Not JSON (a proxy's page): reported by its status.
      }
      if (xhr.status === 201 && body?.id) return resolve({ file: { id: body.id, name: body.name, size: body.size, type: body.type, ...(body.width === undefined ? {} : { width: body.width, height: body.height }) } })
      resolve({ status: xhr.status, error: { code: body?.code ?? 'unavailable', message: body?.message ?? `Upload failed (${xhr.status})` } })
    }
    xhr.onerror = () => resolve({ status: 0, error: { code: 'unavailable', message: 'The upload was interrupted' } })
    xhr.send(file)
  })
}
