// A scripted edge for the conformance runner: a minimal WebSocket server
// (node:http's upgrade, RFC 6455 framing, no dependencies) that plays one
// connection per script step: it checks the client's subscribe `since`,
// answers, sends the step's messages, then closes with the step's code.
// A real edge closes with 4008 only when its buffer for a connection
// overflows, which loopback's socket buffers hide; the script makes the
// close codes certain.
import http from "node:http";
import { createHash } from "node:crypto";

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

function frame(opcode, payload) {
  const n = payload.length;
  const head = n < 126 ? Buffer.from([0x80 | opcode, n])
    : n < 65536 ? Buffer.from([0x80 | opcode, 126, n >> 8, n & 255])
    : (() => { const b = Buffer.alloc(10); b[0] = 0x80 | opcode; b[1] = 127; b.writeBigUInt64BE(BigInt(n), 2); return b; })();
  return Buffer.concat([head, payload]);
}

// readFrames calls onText for each client text frame (clients mask theirs)
// and onClose when the client closes.
function readFrames(sock, onText, onClose) {
  let buf = Buffer.alloc(0);
  sock.on("data", (d) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      if (buf.length < 2) return;
      const op = buf[0] & 15;
      let n = buf[1] & 127, off = 2;
      if (n === 126) { if (buf.length < 4) return; n = buf.readUInt16BE(2); off = 4; }
      else if (n === 127) { if (buf.length < 10) return; n = Number(buf.readBigUInt64BE(2)); off = 10; }
      const masked = (buf[1] & 128) !== 0;
      if (buf.length < off + (masked ? 4 : 0) + n) return;
      const mask = masked ? buf.subarray(off, off + 4) : null;
      off += masked ? 4 : 0;
      const payload = Buffer.from(buf.subarray(off, off + n));
      if (mask) for (let i = 0; i < n; i++) payload[i] ^= mask[i % 4];
      buf = buf.subarray(off + n);
      if (op === 1) onText(payload.toString("utf8"));
      else if (op === 8) { onClose(); return; }
    }
  });
}

export function scriptedMessage(seq) {
  return { event: "message", room: "r", thread: 0, seq, hash: "0".repeat(64), prev_hash: "0".repeat(64),
    author: "a", time: "2026-01-01T00:00:00Z", time_ns: "1", key: `k${seq}`, body: `m${seq}` };
}

// startScriptedEdge plays script, a list of {since, seqs, close} (close: a
// WebSocket close code, or null to stay open); it resolves to {url,
// sinces (the since of each subscribe), stop()}.
export async function startScriptedEdge(script) {
  const sinces = [];
  const sockets = new Set();
  let step = 0;
  const server = http.createServer((req, res) => { res.writeHead(404); res.end(); });
  server.on("upgrade", (req, sock) => {
    sockets.add(sock);
    sock.on("close", () => sockets.delete(sock));
    sock.on("error", () => {});
    const s = script[Math.min(step++, script.length - 1)];
    const accept = createHash("sha1").update(req.headers["sec-websocket-key"] + GUID).digest("base64");
    sock.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      `Sec-WebSocket-Accept: ${accept}\r\n\r\n`);
    const send = (obj) => sock.write(frame(1, Buffer.from(JSON.stringify(obj))));
    readFrames(sock, (text) => {
      const cmd = JSON.parse(text);
      if (cmd.cmd !== "subscribe") { send({ id: cmd.id, ok: true }); return; }
      sinces.push(cmd.since);
      send({ id: cmd.id, ok: true, room: "r", thread: 0, since: cmd.since ?? 0, head_seq: 6 });
      for (const seq of s.seqs) send(scriptedMessage(seq));
      if (s.close !== null) {
        const body = Buffer.alloc(2 + 8);
        body.writeUInt16BE(s.close, 0);
        body.write("scripted", 2);
        sock.write(frame(8, body));
      }
    }, () => sock.end());
  });
  await new Promise((res) => server.listen(0, "127.0.0.1", res));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    sinces,
    stop: () => new Promise((res) => { for (const s of sockets) s.destroy(); server.close(() => res()); }),
  };
}
