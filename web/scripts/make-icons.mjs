// Generates the PWA icons (PNG) and favicon (SVG) with Node only: no image libraries.
// A rounded blue square with a white speech bubble. Run: npm run icons
import { deflateSync } from 'node:zlib';
import { mkdirSync, writeFileSync } from 'node:fs';

const out = new URL('../public/icons/', import.meta.url);
mkdirSync(out, { recursive: true });

const CRC = new Int32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c;
});
function crc32(buf) {
  let c = -1;
  for (const b of buf) c = CRC[(c ^ b) & 255] ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}
function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}
function png(size, pixel) {
  const raw = Buffer.alloc((size * 4 + 1) * size);
  for (let y = 0; y < size; y++) {
    raw[y * (size * 4 + 1)] = 0;
    for (let x = 0; x < size; x++) {
      // 4x supersampling for smooth edges
      let acc = [0, 0, 0, 0];
      for (let sy = 0; sy < 2; sy++)
        for (let sx = 0; sx < 2; sx++) {
          const p = pixel((x + (sx + 0.5) / 2) / size, (y + (sy + 0.5) / 2) / size);
          for (let i = 0; i < 4; i++) acc[i] += p[i] / 4;
        }
      raw.set(acc.map(Math.round), y * (size * 4 + 1) + 1 + x * 4);
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 8;
  ihdr[9] = 6; // RGBA
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

const BLUE = [37, 99, 235, 255];
const WHITE = [255, 255, 255, 255];
const CLEAR = [0, 0, 0, 0];
function inRoundRect(u, v, x0, y0, x1, y1, r) {
  if (u < x0 || u > x1 || v < y0 || v > y1) return false;
  const cx = Math.min(Math.max(u, x0 + r), x1 - r);
  const cy = Math.min(Math.max(v, y0 + r), y1 - r);
  return (u - cx) ** 2 + (v - cy) ** 2 <= r * r;
}
function bubble(u, v, s = 1, o = 0) {
  // map into the bubble's box (scaled around the center for maskable safe zone)
  const x = (u - 0.5) / s + 0.5;
  const y = (v - 0.5) / s + 0.5 + o;
  if (inRoundRect(x, y, 0.2, 0.24, 0.8, 0.66, 0.12)) return true;
  // tail: triangle (0.3,0.62) (0.46,0.62) (0.28,0.8)
  const d = (x1, y1, x2, y2) => (x - x2) * (y1 - y2) - (x1 - x2) * (y - y2);
  const a = d(0.3, 0.62, 0.46, 0.62), b = d(0.46, 0.62, 0.28, 0.8), c = d(0.28, 0.8, 0.3, 0.62);
  return !((a < 0 || b < 0 || c < 0) && (a > 0 || b > 0 || c > 0));
}
function dots(u, v, s = 1) {
  const x = (u - 0.5) / s + 0.5;
  const y = (v - 0.5) / s + 0.5;
  return [0.36, 0.5, 0.64].some((cx) => (x - cx) ** 2 + (y - 0.45) ** 2 < 0.045 ** 2);
}
const icon = (u, v) => (inRoundRect(u, v, 0.02, 0.02, 0.98, 0.98, 0.2) ? (bubble(u, v) ? (dots(u, v) ? BLUE : WHITE) : BLUE) : CLEAR);
const maskable = (u, v) => (bubble(u, v, 0.7) ? (dots(u, v, 0.7) ? BLUE : WHITE) : BLUE);

for (const size of [192, 512]) writeFileSync(new URL(`icon-${size}.png`, out), png(size, icon));
writeFileSync(new URL('maskable-512.png', out), png(512, maskable));
writeFileSync(new URL('apple-touch-icon.png', out), png(180, maskable));
writeFileSync(
  new URL('favicon.svg', out),
  `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 100 100"><rect x="2" y="2" width="96" height="96" rx="20" fill="#2563eb"/><path d="M32 24h36a12 12 0 0 1 12 12v18a12 12 0 0 1-12 12H46L28 80l2-14a12 12 0 0 1-10-12V36a12 12 0 0 1 12-12z" fill="#fff"/><circle cx="36" cy="45" r="4.5" fill="#2563eb"/><circle cx="50" cy="45" r="4.5" fill="#2563eb"/><circle cx="64" cy="45" r="4.5" fill="#2563eb"/></svg>\n`,
);
console.log('icons written to public/icons/');
