/**
 * Binary search: the first index in `0..length` where `isBefore` is false, for a predicate that
 * holds on a prefix only (the entries of a sorted array that come before the one sought).
 */
export function firstIndexNotBefore(length: number, isBefore: (index: number) => boolean): number {
  let lo = 0
  let hi = length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (isBefore(mid)) lo = mid + 1
    else hi = mid
  }
  return lo
}
