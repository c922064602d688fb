/**
 * The one POST of a notification to a push service, made only to a public address: a subscriber
 * names the endpoint, and a host name of theirs may resolve into the server's own network
 * (`127.0.0.1.nip.io`, `redis.default.svc.cluster.local`, a metadata service). The address is
 * checked as the connection is made, by the lookup the socket connects with, so a name that
 * answers differently the second time (DNS rebinding) is checked where it counts.
 */
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns'
import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { BlockList, isIP } from 'node:net'

/** Addresses that are not on the public internet (IANA special-purpose registries); loopback is kept apart for `insecureLoopback`. */
const NOT_PUBLIC = new BlockList()
for (const [network, prefix] of [['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['169.254.0.0', 16], ['172.16.0.0', 12], ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.88.99.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24], ['203.0.113.0', 24], ['224.0.0.0', 4], ['240.0.0.0', 4]] as const) NOT_PUBLIC.addSubnet(network, prefix, 'ipv4')
for (const [network, prefix] of [['::', 128], ['64:ff9b::', 96], ['64:ff9b:1::', 48], ['100::', 64], ['2001::', 23], ['2001:db8::', 32], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8]] as const) NOT_PUBLIC.addSubnet(network, prefix, 'ipv6')
const LOOPBACK = new BlockList()
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4')
LOOPBACK.addAddress('::1', 'ipv6')

/** Why a push service may not be reached at `address`, or undefined. */
export function addressProblem(address: string, insecureLoopback: boolean): string | undefined {
  const family = isIP(address)
  if (!family) return `${address} is not an address`
  // An IPv4 address written as IPv6 (`::ffff:10.0.0.1`) is checked as the IPv4 address it is.
  const mapped = family === 6 ? /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1] : undefined
  const [plain, type] = mapped ? [mapped, 'ipv4' as const] : [address, family === 4 ? 'ipv4' as const : 'ipv6' as const]
  if (LOOPBACK.check(plain, type)) return insecureLoopback ? undefined : `${address} is this machine`
  return NOT_PUBLIC.check(plain, type) ? `${address} is not a public address` : undefined
}

/** The push service's address refused: not an outage (the subscription points where it may not). */
export class PushAddressRefusal extends Error {}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void

/** A `lookup` for `http(s).request` that resolves as Node does, then refuses any answer that is not a public address. */
export function publicLookup(insecureLoopback: boolean) {
  return (hostname: string, options: LookupOptions, callback: LookupCallback) => {
    dnsLookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) return callback(error, [])
      // Any private answer refuses the name: which address a connection tries first is not ours to choose.
      const problem = addresses.map(({ address }) => addressProblem(address, insecureLoopback)).find(Boolean)
      if (problem) return callback(new PushAddressRefusal(`push service ${hostname}: ${problem}`), [])
      if (options.all) return callback(null, addresses)
      callback(null, addresses[0]!.address, addresses[0]!.family)
    })
  }
}

/** POST `body` to `endpoint` with `headers`; resolves to the answer's status (its body unread), rejects on a refused address, an error, `timeout` or `signal`. */
export function postToPushService(endpoint: string, headers: Record<string, string>, body: Uint8Array, options: { insecureLoopback: boolean, timeout: number, signal?: AbortSignal }): Promise<number> {
  const url = new URL(endpoint)
  const request = url.protocol === 'http:' ? httpRequest : httpsRequest
  // An address for a host is not looked up: checked here.
  const literal = url.hostname.replace(/^\[(.*)\]$/, '$1')
  const problem = isIP(literal) ? addressProblem(literal, options.insecureLoopback) : undefined
  if (problem) return Promise.reject(new PushAddressRefusal(`push service: ${problem}`))
  return new Promise((resolve, reject) => {
    const outgoing = request(url, { method: 'POST', headers: { ...headers, 'content-length': String(body.byteLength) }, lookup: publicLookup(options.insecureLoopback), signal: options.signal ? AbortSignal.any([AbortSignal.timeout(options.timeout), options.signal]) : AbortSignal.timeout(options.timeout) }, (response) => {
      // The answer's body is never needed: not read (a push service could send any amount).
      response.destroy()
      resolve(response.statusCode ?? 0)
    })
    outgoing.once('error', reject)
    outgoing.end(body)
  })
}
