// Post throughput through the JS SDK, for `tigerbench sdk`: CONNS clients
// with IN_FLIGHT posts each in flight (every post waits for its seq), for
// WARMUP then SECONDS; prints one JSON line: posts acknowledged in the
// measured window, per second, latency percentiles, errors.
//
//   node [--experimental-websocket] bench/throughput.js URL TOKEN ROOM CONNS IN_FLIGHT WARMUP_S SECONDS
import { Client } from "../src/index.js";

const a = process.argv.slice(2);
if (a.length !== 7) {
  console.error("usage: throughput.js URL TOKEN ROOM CONNS IN_FLIGHT WARMUP_S SECONDS");
  process.exit(2);
}
const [url, token, room] = a;
const [conns, inFlight, warmup, seconds] = a.slice(3).map(Number);
if (!(conns >= 1 && conns <= 512 && inFlight >= 1 && inFlight <= 64 && seconds >= 1 && seconds <= 120 && warmup >= 0 && warmup <= 60)) {
  console.error("throughput.js: arguments out of bounds");
  process.exit(2);
}
const clients = [];
for (let c = 0; c < conns; c++) clients.push(await Client.connect({ url, token }));
const from = performance.now() + warmup * 1000, till = from + seconds * 1000;
const lat = []; // ms, measured window only
let errors = 0;
const body = "x".repeat(256);
async function worker(client, c, w) {
  for (let i = 1; ; i++) {
    const sent = performance.now();
    if (sent >= till) return;
    try {
      await client.post(room, body, { key: `js-${c}-${w}-${i}` });
      const done = performance.now();
      if (done >= from && done < till) lat.push(done - sent); // as the Go loop: acks that land in the window
    } catch {
      errors++;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}
const work = [];
clients.forEach((client, c) => { for (let w = 0; w < inFlight; w++) work.push(worker(client, c, w)); });
await Promise.all(work);
for (const c of clients) c.close();
lat.sort((x, y) => x - y);
const q = (p) => (lat.length ? lat[Math.floor((lat.length - 1) * p)] : 0);
console.log(JSON.stringify({ posts: lat.length, seconds, posts_per_second: +(lat.length / seconds).toFixed(1),
  p50_ms: +q(0.5).toFixed(3), p99_ms: +q(0.99).toFixed(3), errors }));
process.exit(0);
