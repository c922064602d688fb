/** Real files for the attachment tests (test/e2e/files.test.ts, test/browser/files.test.ts): made byte by byte, never mocked. */
import { deflateSync } from 'node:zlib'

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320 ^ (c >>> 1) : c >>> 1
  return c >>> 0
})

function crc32(bytes: Buffer): number {
  let crc = -1
  for (const byte of bytes) crc = (crc >>> 8) ^ CRC_TABLE[(crc ^ byte) & 255]!
  return (crc ^ -1) >>> 0
}

function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4)
  length.writeUInt32BE(data.length)
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data])
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(body))
  return Buffer.concat([length, body, crc])
}

/** A valid RGB PNG of `width` × `height`, in a colour that changes along x (`seed` shifts it). */
export function png(width: number, height: number, seed = 0): Buffer {
  const header = Buffer.alloc(13)
  header.writeUInt32BE(width, 0)
  header.writeUInt32BE(height, 4)
  header[8] = 8
  header[9] = 2
  const raw = Buffer.alloc((width * 3 + 1) * height)
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const at = y * (width * 3 + 1) + 1 + x * 3
      raw[at] = (x * 255 / width + seed) & 255
      raw[at + 1] = (y * 255 / height) & 255
      raw[at + 2] = (seed * 7) & 255
    }
  }
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), pngChunk('IHDR', header), pngChunk('IDAT', deflateSync(raw)), pngChunk('IEND', Buffer.alloc(0))])
}

/** The first bytes of a Linux executable (ELF, x86-64), padded: what a renamed program starts with. */
export function elf(): Buffer {
  const bytes = Buffer.alloc(4096)
  Buffer.from([0x7F, 0x45, 0x4C, 0x46, 2, 1, 1, 0]).copy(bytes)
  bytes.writeUInt16LE(2, 16) // ET_EXEC
  bytes.writeUInt16LE(0x3E, 18) // x86-64
  return bytes
}

/** A Windows executable's headers (MZ, then `PE\0\0` at the offset the DOS header names). */
export function pe(): Buffer {
  const bytes = Buffer.alloc(4096)
  bytes.write('MZ', 0, 'latin1')
  bytes.writeUInt32LE(0x80, 0x3C)
  bytes.write('PE\0\0', 0x80, 'latin1')
  bytes.writeUInt16LE(0x8664, 0x84)
  return bytes
}
