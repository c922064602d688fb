/** Token-bucket rate limiting: messages, history pages and bytes, reads, new rooms, joins. */

export interface RateLimitOptions {
  /** Tokens (messages, pages, reads, rooms, joins) refilled per `interval`. @default 20 */
  messages: number
  /** Refill window in milliseconds. @default 10000 */
  interval: number
  /** Bucket size: how many messages may arrive at once. @default 10 */
  burst: number
}

export interface TokenBucket {
  tokens: number
  updatedAt: number
}

/** A full bucket. */
export function createTokenBucket(options: RateLimitOptions, now = Date.now()): TokenBucket {
  return { tokens: options.burst, updatedAt: now }
}

/** Refill a bucket up to `now`: true when it holds a token. */
function refill(bucket: TokenBucket, options: RateLimitOptions, now: number): boolean {
  bucket.tokens = Math.min(options.burst, bucket.tokens + ((now - bucket.updatedAt) * options.messages) / options.interval)
  bucket.updatedAt = now
  return bucket.tokens >= 1
}

/** Take one token if there is one: true when the message may pass. */
export function takeToken(bucket: TokenBucket, options: RateLimitOptions, now = Date.now()): boolean {
  if (!refill(bucket, options, now)) return false
  bucket.tokens -= 1
  return true
}

/**
 * Buckets by key (user id, guest id or client address), shared by every connection and POST
 * of that key; idle full buckets are dropped so the map stays small.
 */
export function createRateLimiter(options: RateLimitOptions) {
  const buckets = new Map<string, TokenBucket>()
  return {
    take(key: string, now = Date.now()): boolean {
      let bucket = buckets.get(key)
      if (!bucket) buckets.set(key, bucket = createTokenBucket(options, now))
      return takeToken(bucket, options, now)
    },
    /** Would `take(key)` pass now? Takes nothing. */
    has(key: string, now = Date.now()): boolean {
      const bucket = buckets.get(key)
      return !bucket || refill(bucket, options, now)
    },
    /** Take `cost` tokens even past empty (a cost known only afterwards, as bytes served): `has` is false until the debt is refilled. */
    charge(key: string, cost: number, now = Date.now()): void {
      let bucket = buckets.get(key)
      if (!bucket) buckets.set(key, bucket = createTokenBucket(options, now))
      refill(bucket, options, now)
      bucket.tokens -= cost
    },
    /** Milliseconds until `take(key)` can pass (0: now). */
    waitFor(key: string, now = Date.now()): number {
      const bucket = buckets.get(key)
      if (!bucket || refill(bucket, options, now)) return 0
      return Math.ceil(((1 - bucket.tokens) * options.interval) / options.messages)
    },
    /** Forget buckets that have refilled completely. */
    sweep(now = Date.now()) {
      for (const [key, bucket] of buckets) {
        if (bucket.tokens + ((now - bucket.updatedAt) * options.messages) / options.interval >= options.burst) buckets.delete(key)
      }
    },
    get size() {
      return buckets.size
    },
  }
}
