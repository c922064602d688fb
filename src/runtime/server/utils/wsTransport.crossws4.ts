/**
 * crossws 0.4 (Nitro 3, Nuxt 5) beside ./wsTransport.ts, which was written against crossws 0.3.
 * 0.4's Node adapter still runs on its bundled `ws`, so the fast path there keeps working; what
 * moved is reached here, through 0.4's public API where it has one:
 * - the upgrade request is srvx's `NodeRequest`: its TCP socket is at `runtime.node.upgrade.socket`
 *   (0.3 wrapped Node's `IncomingMessage` as `_req`);
 * - `peer.bufferedAmount` is public: the output bound holds when the raw socket is out of reach;
 * - Nitro 3 makes the adapter without options, so `maxPayload` is set per socket on `ws`'s receiver.
 * Each reach checks the shape it relies on and falls back (logged once) like ./wsTransport.ts.
 */
import type { Peer } from 'crossws'
import { fallBack, type RawWebSocket } from './wsTransport'

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null

/** The TCP socket of an upgrade request given as srvx's `NodeRequest` (crossws 0.4 under Nitro 3), or `undefined`. */
export function srvxUpgradeSocketOf(request: unknown): Record<string, unknown> | undefined {
  const runtime = isObject(request) ? request.runtime : undefined
  const node = isObject(runtime) ? runtime.node : undefined
  if (!isObject(node)) return undefined
  const upgrade = isObject(node.upgrade) ? node.upgrade.socket : undefined
  const req = isObject(node.req) ? node.req.socket : undefined
  const socket = upgrade ?? req
  return isObject(socket) ? socket : undefined
}

/** Bytes crossws reports as not yet sent (crossws 0.4's public `peer.bufferedAmount`); 0 where the adapter has none (crossws 0.3). */
export function publicBufferedAmount(peer: Peer): number {
  const amount = (peer as unknown as { bufferedAmount?: unknown }).bufferedAmount
  return typeof amount === 'number' ? amount : 0
}

/** Cap a socket's incoming frames at `maxPayload` bytes on `ws`'s receiver (its `maxPayload` option, read per frame). */
export function capFramesOf(ws: RawWebSocket | undefined, maxPayload: number): void {
  const receiver = ws ? (ws as unknown as { _receiver?: unknown })._receiver : undefined
  if (isObject(receiver) && typeof receiver._maxPayload === 'number') {
    receiver._maxPayload = maxPayload
    return
  }
  fallBack('`ws._receiver._maxPayload` not found: incoming frames are capped by the adapter\'s default (100 MiB for `ws`), not `maxPayload`')
}
