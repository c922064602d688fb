import { createHash } from 'node:crypto'
import type { ChatFile } from '../../shared/protocol'
import type { ClaimFiles } from '../utils/sendPipeline'
import type { RoomLog } from '../utils/roomLog'

/** An upload as recorded (`chat_files`): its metadata, where and by whom, and the message that took it. */
export interface FileRecord extends ChatFile {
  room: string
  /** The uploader's id (user id or guest id). */
  uid: string
  /** Whose bytes of the day it counts against: the uploader's id, or a guest's address (`quotaKeyOf`). */
  quota: string
  /** The message that carries it; absent while it is an upload no message took yet. */
  message?: number
  /** When it was uploaded (epoch ms). */
  created: number
}

/**
 * The uploads' records, in the chat's database (./fileRecords.db0.ts) or in memory (below), so
 * every instance sharing the database checks, counts and sweeps the same uploads.
 */
export interface FileRecords {
  add: (record: FileRecord) => Promise<void>
  /** A file not removed. */
  get: (id: string) => Promise<FileRecord | undefined>
  /** Bytes counted against `quota` since `since` (removed files too: removing one does not give its bytes back). */
  usedSince: (quota: string, since: number) => Promise<number>
  /** Reserve, under `token`, those of `ids` that `uid` uploaded to `room`, no message took and no other send holds (or held before `staleBefore`): the ones reserved. */
  claim: (ids: string[], room: string, uid: string, token: string, now: number, staleBefore: number) => Promise<FileRecord[]>
  release: (token: string) => Promise<void>
  /** The files reserved under `token` are message `id`'s. */
  attach: (token: string, id: number) => Promise<void>
  /** The files of message `id` of `room`, not removed. */
  ofMessage: (room: string, id: number) => Promise<string[]>
  /** Files to remove (at most `limit`): uploads older than `orphanBefore` no message took (nor holds since `staleBefore`), and files of messages deleted or gone. */
  sweepable: (orphanBefore: number, staleBefore: number, limit: number) => Promise<string[]>
  /** The files' bytes were removed: they are gone (kept a day for the quota). */
  markGone: (ids: string[]) => Promise<void>
  /** Forget removed files uploaded before `before`. */
  forget: (before: number) => Promise<void>
  close: () => Promise<void>
}

/** How long a send may hold uploads before another may take them (a send that died holding them). */
export const CLAIM_TIMEOUT = 60_000

/** The records in process memory (`storage: 'memory'`): a message's liveness is asked of the room log. */
export function createMemoryFileRecords(store: Pick<RoomLog, 'message'>): FileRecords {
  const records = new Map<string, FileRecord & { claim?: string, claimedAt?: number, gone?: boolean }>()
  const live = () => [...records.values()].filter(record => !record.gone)
  return {
    async add(record) {
      records.set(record.id, { ...record })
    },
    async get(id) {
      const record = records.get(id)
      if (!record || record.gone) return undefined
      const { claim: _claim, claimedAt: _at, gone: _gone, ...file } = record
      return file
    },
    async usedSince(quota, since) {
      let used = 0
      for (const record of records.values()) if (record.quota === quota && record.created > since) used += record.size
      return used
    },
    async claim(ids, room, uid, token, now, staleBefore) {
      const taken: FileRecord[] = []
      for (const id of ids) {
        const record = records.get(id)
        if (!record || record.gone || record.room !== room || record.uid !== uid || record.message !== undefined) continue
        if (record.claim !== undefined && record.claimedAt! >= staleBefore && record.claim !== token) continue
        record.claim = token
        record.claimedAt = now
        taken.push(record)
      }
      return taken
    },
    async release(token) {
      for (const record of records.values()) if (record.claim === token) record.claim = undefined
    },
    async attach(token, id) {
      for (const record of records.values()) {
        if (record.claim !== token) continue
        record.message = id
        record.claim = undefined
      }
    },
    async ofMessage(room, id) {
      return live().filter(record => record.room === room && record.message === id).map(record => record.id)
    },
    async sweepable(orphanBefore, staleBefore, limit) {
      const found: string[] = []
      for (const record of live()) {
        if (found.length >= limit) break
        if (record.message === undefined) {
          if (record.created < orphanBefore && (record.claim === undefined || record.claimedAt! < staleBefore)) found.push(record.id)
          continue
        }
        const message = await store.message(record.room, record.message)
        if (!message || message.deleted) found.push(record.id)
      }
      return found
    },
    async markGone(ids) {
      for (const id of ids) {
        const record = records.get(id)
        if (record) record.gone = true
      }
    },
    async forget(before) {
      for (const [id, record] of records) if (record.gone && record.created < before) records.delete(id)
    },
    async close() {},
  }
}

/** The send pipeline's reservation of a message's uploads (see `ClaimFiles`), with `maxFiles` per message. */
export function claimFilesWith(records: FileRecords, maxFiles: number): ClaimFiles {
  return async (input) => {
    const ids = input.files ?? []
    if (ids.length > maxFiles) return [400, 'bad_request', `At most ${maxFiles} files in one message`]
    // A send with a cid reserves under a token of its own: retried after a fault that kept its reservation (the
    // store down as it let go), it takes it back instead of waiting out CLAIM_TIMEOUT as "not an upload of yours".
    const token = input.cid === undefined ? crypto.randomUUID() : createHash('sha256').update(JSON.stringify([input.room, input.sender, input.cid])).digest('base64url')
    const now = Date.now()
    let taken: FileRecord[]
    try {
      taken = await records.claim(ids, input.room, input.sender, token, now, now - CLAIM_TIMEOUT)
    }
    catch {
      await records.release(token).catch(() => {})
      return [503, 'unavailable', 'The attachments could not be checked; try again']
    }
    if (taken.length !== ids.length) {
      await records.release(token).catch(() => {})
      const missing = ids.filter(id => !taken.some(record => record.id === id))
      return [400, 'bad_request', `Not an upload of yours to this room that no message took: ${missing.join(', ')}`]
    }
    // In the order the sender gave.
    const files = ids.map((id) => {
      const { id: _id, name, size, type, width, height, preview } = taken.find(record => record.id === id)!
      return { id, name, size, type, ...(width === undefined ? {} : { width }), ...(height === undefined ? {} : { height }), ...(preview ? { preview } : {}) }
    })
    return { files, attach: id => records.attach(token, id), release: () => records.release(token) }
  }
}
