/**
 * A Web Push service the test runs on loopback (RFC 8030): it takes the real POSTs the chat
 * server sends, checks their VAPID JWT (RFC 8292: ES256 signed with the application server's
 * public key, `aud` its own origin, `exp` within 24 h, `sub`), decrypts their `aes128gcm`
 * payload (RFC 8188 / RFC 8291) with the subscription's private key and auth secret using
 * node:crypto only, and answers 201, or the status a test set for a subscription (410: gone).
 */
import { createECDH, createDecipheriv, createPublicKey, hkdfSync, randomBytes, randomUUID, verify, type ECDH } from 'node:crypto'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'

/** A browser's side of one subscription: what it would send to the app, and its secrets. */
export interface TestSubscription {
  id: string
  /** The `PushSubscription.toJSON()` a browser would POST. */
  json: { endpoint: string, keys: { p256dh: string, auth: string } }
  ecdh: ECDH
  auth: Buffer
  /** The status the service answers this subscription with (201 by default). */
  status: number
}

/** One push the service received, checked and decrypted. */
export interface ReceivedPush {
  subscription: string
  headers: IncomingHttpHeaders
  /** The JWT's claims, once its signature checked out. */
  claims: { aud: string, exp: number, sub: string }
  /** The decrypted payload, parsed. */
  payload: Record<string, unknown>
  /** What was wrong with the request (an empty list: nothing). */
  problems: string[]
  /** When it arrived (epoch ms). */
  at: number
}

/** A VAPID key pair made with node:crypto: the raw public point and private scalar, base64url. */
export function vapidKeys(): { publicKey: string, privateKey: string } {
  const ecdh = createECDH('prime256v1')
  ecdh.generateKeys()
  // The private key as 32 bytes: ECDH drops its leading zero bytes (1 key in ~370), and web-push refuses a shorter one.
  const privateKey = ecdh.getPrivateKey()
  return { publicKey: ecdh.getPublicKey().toString('base64url'), privateKey: Buffer.concat([Buffer.alloc(32 - privateKey.length), privateKey]).toString('base64url') }
}

/** An uncompressed P-256 point as a public key object. */
function publicKeyOf(point: Buffer) {
  return createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: point.subarray(1, 33).toString('base64url'), y: point.subarray(33, 65).toString('base64url') }, format: 'jwk' })
}

/** Check `Authorization: vapid t=<jwt>, k=<key>` against the expected public key, origin and subject: the claims, or throws why not. */
export function checkVapid(header: string | undefined, publicKey: string, origin: string, subject: string, now = Date.now()): ReceivedPush['claims'] {
  const match = /^vapid t=([\w-]+\.[\w-]+\.[\w-]+), k=([\w-]+)$/.exec(header ?? '')
  if (!match) throw new Error(`Authorization is not "vapid t=…, k=…": ${header}`)
  const [, token, key] = match
  if (key !== publicKey) throw new Error('k= is not the application server\'s public key')
  const [head, body, signature] = token!.split('.')
  const header64 = JSON.parse(Buffer.from(head!, 'base64url').toString()) as { alg?: string, typ?: string }
  if (header64.alg !== 'ES256') throw new Error(`alg is ${header64.alg}`)
  // JWS ES256: the raw r || s, 64 bytes.
  const valid = verify('sha256', Buffer.from(`${head}.${body}`), { key: publicKeyOf(Buffer.from(publicKey, 'base64url')), dsaEncoding: 'ieee-p1363' }, Buffer.from(signature!, 'base64url'))
  if (!valid) throw new Error('the JWT signature does not verify with the public key')
  const claims = JSON.parse(Buffer.from(body!, 'base64url').toString()) as ReceivedPush['claims']
  if (claims.aud !== origin) throw new Error(`aud is ${claims.aud}, not ${origin}`)
  if (claims.sub !== subject) throw new Error(`sub is ${claims.sub}, not ${subject}`)
  const seconds = now / 1000
  if (!(claims.exp > seconds) || claims.exp > seconds + 24 * 3600) throw new Error(`exp ${claims.exp} is not within the next 24 hours`)
  return claims
}

/** Decrypt an `aes128gcm` body (RFC 8188) for a subscription (RFC 8291): the plaintext. */
export function decryptPush(body: Buffer, ecdh: ECDH, auth: Buffer): Buffer {
  const salt = body.subarray(0, 16)
  const recordSize = body.readUInt32BE(16)
  const idLength = body[20]!
  if (idLength !== 65) throw new Error(`keyid is ${idLength} bytes, not an uncompressed P-256 point`)
  const senderPublic = body.subarray(21, 21 + idLength)
  const ciphertext = body.subarray(21 + idLength)
  if (ciphertext.length > recordSize) throw new Error('more than one record')
  const receiverPublic = ecdh.getPublicKey()
  const secret = ecdh.computeSecret(senderPublic)
  const keyInfo = Buffer.concat([Buffer.from('WebPush: info\0'), receiverPublic, senderPublic])
  const ikm = Buffer.from(hkdfSync('sha256', secret, auth, keyInfo, 32))
  const cek = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: aes128gcm\0'), 16))
  const nonce = Buffer.from(hkdfSync('sha256', ikm, salt, Buffer.from('Content-Encoding: nonce\0'), 12))
  const decipher = createDecipheriv('aes-128-gcm', cek, nonce)
  decipher.setAuthTag(ciphertext.subarray(ciphertext.length - 16))
  const padded = Buffer.concat([decipher.update(ciphertext.subarray(0, ciphertext.length - 16)), decipher.final()])
  // The last record: its data, then 2, then zeros.
  let end = padded.length - 1
  while (end >= 0 && padded[end] === 0) end--
  if (padded[end] !== 2) throw new Error('no last-record delimiter')
  return padded.subarray(0, end)
}

export interface PushReceiver {
  origin: string
  received: ReceivedPush[]
  /** A new subscription, as a browser would make it. */
  subscribe: () => TestSubscription
  /** What arrived for one subscription. */
  pushesOf: (subscription: TestSubscription) => ReceivedPush[]
  close: () => Promise<void>
}

/** Start the push service for an application server's VAPID public key and subject. */
export async function startPushReceiver(vapidPublicKey: string, subject: string): Promise<PushReceiver> {
  const subscriptions = new Map<string, TestSubscription>()
  const received: ReceivedPush[] = []
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on('data', chunk => chunks.push(chunk))
    request.on('end', () => {
      const id = /^\/push\/([\w-]+)$/.exec(request.url ?? '')?.[1]
      const subscription = id ? subscriptions.get(id) : undefined
      if (!subscription || request.method !== 'POST') {
        response.writeHead(404).end()
        return
      }
      const problems: string[] = []
      let claims = { aud: '', exp: 0, sub: '' }
      let payload: Record<string, unknown> = {}
      try {
        claims = checkVapid(request.headers.authorization, vapidPublicKey, origin, subject)
      }
      catch (error) {
        problems.push((error as Error).message)
      }
      if (request.headers['content-encoding'] !== 'aes128gcm') problems.push(`Content-Encoding is ${request.headers['content-encoding']}`)
      if (!request.headers.ttl) problems.push('no TTL header')
      try {
        payload = JSON.parse(decryptPush(Buffer.concat(chunks), subscription.ecdh, subscription.auth).toString('utf8')) as Record<string, unknown>
      }
      catch (error) {
        problems.push(`decryption failed: ${(error as Error).message}`)
      }
      received.push({ subscription: subscription.id, headers: request.headers, claims, payload, problems, at: Date.now() })
      response.writeHead(subscription.status, { location: `${origin}/message/${randomUUID()}` }).end()
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  return {
    origin,
    received,
    subscribe() {
      const ecdh = createECDH('prime256v1')
      ecdh.generateKeys()
      const auth = randomBytes(16)
      const id = randomUUID()
      const subscription: TestSubscription = { id, ecdh, auth, status: 201, json: { endpoint: `${origin}/push/${id}`, keys: { p256dh: ecdh.getPublicKey().toString('base64url'), auth: auth.toString('base64url') } } }
      subscriptions.set(id, subscription)
      return subscription
    },
    pushesOf: subscription => received.filter(push => push.subscription === subscription.id),
    close: () => new Promise<void>(resolve => server.close(() => resolve())),
  }
}
