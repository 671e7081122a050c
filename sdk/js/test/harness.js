// Starts a real `tigerchat dev` for the conformance runner: the binary from
// $TIGERCHAT_BIN or built with `go build` from the repository root, free
// 127.0.0.1 ports, processes stopped by PID and temp dirs removed.
import { spawn, execFileSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, existsSync } from "node:fs";
import net from "node:net";
import dgram from "node:dgram";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "../src/index.js";

const here = path.dirname(fileURLToPath(import.meta.url));
let built = null;
const cleanups = [];
process.on("exit", () => { for (const f of cleanups.splice(0).reverse()) { try { f(); } catch {} } });

export function serverBinary() {
  if (process.env.TIGERCHAT_BIN) return path.resolve(process.env.TIGERCHAT_BIN);
  if (built) return built;
  const dir = mkdtempSync(path.join(os.tmpdir(), "tigerchat-js-bin-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  built = path.join(dir, "tigerchat");
  execFileSync("go", ["build", "-o", built, "./cmd/tigerchat"], { cwd: path.resolve(here, "../../.."), env: { ...process.env, CGO_ENABLED: "0" }, stdio: "inherit" });
  return built;
}

function freeTCP() {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.on("error", rej);
    s.listen(0, "127.0.0.1", () => { const a = s.address(); s.close(() => res(`127.0.0.1:${a.port}`)); });
  });
}

async function udpFree(port) {
  return new Promise((res) => {
    const s = dgram.createSocket("udp4");
    s.on("error", () => res(false));
    s.bind(port, "127.0.0.1", () => s.close(() => res(true)));
  });
}

async function freeUDPBase() {
  for (let i = 0; i < 200; i++) {
    const base = 20000 + Math.floor(Math.random() * 30000);
    if ((await udpFree(base)) && (await udpFree(base + 1)) && (await udpFree(base + 2))) return base;
  }
  throw new Error("no 3 consecutive free UDP ports");
}

export class DevServer {
  static async start() {
    const s = new DevServer();
    s.dir = mkdtempSync(path.join(os.tmpdir(), "tigerchat-js-dev-"));
    const edge = await freeTCP();
    s.edge = "http://" + edge;
    s.args = ["dev", "-dir", path.join(s.dir, "data"), "-shards", "1", "-http", await freeTCP(), "-base-port", String(await freeUDPBase()), "-edge", edge, "-edge-h3=false", "-tls=false"];
    s.clients = [];
    cleanups.push(() => s.stop(true));
    await s._run();
    const auth = JSON.parse(readFileSync(path.join(s.dir, "data", "edge-auth.json"), "utf8"));
    s.secret = Buffer.from(auth.keys[0].secret, "base64");
    return s;
  }

  async _run() {
    const bin = serverBinary();
    if (!existsSync(bin)) throw new Error(`no tigerchat binary at ${bin}`);
    this.proc = spawn(bin, this.args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    const exited = new Promise((res) => this.proc.once("exit", res));
    this.exited = exited;
    await new Promise((res, rej) => {
      const t = setTimeout(() => rej(new Error("tigerchat dev not ready in 30 s:\n" + out)), 30000);
      const on = (d) => { out += d; if (out.includes("ready in")) { clearTimeout(t); res(); } };
      this.proc.stdout.on("data", on);
      this.proc.stderr.on("data", on);
      exited.then(() => { clearTimeout(t); rej(new Error("tigerchat dev exited:\n" + out)); });
    });
  }

  /** SIGTERM (edge closes WebSockets with 1001), then start again. */
  async restart() {
    this.proc.kill("SIGTERM");
    await Promise.race([this.exited, new Promise((r) => setTimeout(r, 15000))]);
    if (this.proc.exitCode === null) { this.proc.kill("SIGKILL"); await this.exited; }
    for (let i = 0; ; i++) {
      try { await this._run(); return; } catch (e) { if (i >= 20) throw e; await new Promise((r) => setTimeout(r, 100)); }
    }
  }

  stop(sync = false) {
    for (const c of this.clients.splice(0)) c.close();
    if (this.proc && this.proc.exitCode === null) this.proc.kill("SIGKILL");
    if (sync) rmSync(this.dir, { recursive: true, force: true });
    else return this.exited.then(() => rmSync(this.dir, { recursive: true, force: true }));
  }

  token(user, ttlSec = 3600) {
    const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
    const now = Math.floor(Date.now() / 1000);
    const msg = b64({ alg: "HS256", kid: "dev", typ: "JWT" }) + "." + b64({ tenant: "dev", sub: user, rooms: "*", aud: ["tigerchat"], iat: now - 60, exp: now + ttlSec });
    return msg + "." + createHmac("sha256", this.secret).update(msg).digest("base64url");
  }

  async client(user, opts = {}) {
    const c = await Client.connect({ url: this.edge, token: this.token(user), backoffMinMs: 50, backoffMaxMs: 1000, ...opts });
    this.clients.push(c);
    return c;
  }
}

/**
 * A 3-process cluster: `tigerchat dev` creates the files once, then three
 * `tigerchat start` processes (one per replica, each with /status) and one
 * `tigerchat edge` without rate limits.
 */
export class Cluster3 {
  static async start() {
    const c = new Cluster3();
    c.dir = mkdtempSync(path.join(os.tmpdir(), "tigerchat-js-c3-"));
    c.procs = [];
    c.clients = [];
    cleanups.push(() => c.stop(true));
    const data = path.join(c.dir, "data");
    const setup = new DevServer();
    setup.dir = c.dir;
    setup.args = ["dev", "-dir", data, "-shards", "1", "-http", await freeTCP(), "-base-port", String(await freeUDPBase()), "-edge", await freeTCP(), "-edge-h3=false"];
    await setup._run();
    setup.proc.kill("SIGTERM");
    await setup.exited;
    const auth = JSON.parse(readFileSync(path.join(data, "edge-auth.json"), "utf8"));
    c.secret = Buffer.from(auth.keys[0].secret, "base64");
    c.status = [];
    for (let i = 0; i < 3; i++) {
      const h = await freeTCP();
      c.status.push(h);
      c.procs.push(spawn(serverBinary(), ["start", "-config", path.join(data, "cluster.json"), "-replica", String(i), "-data", path.join(data, `replica-${i}`), "-identity", path.join(data, `replica-${i}.pem`), "-http", h], { stdio: "ignore" }));
    }
    const edge = await freeTCP();
    c.edge = "http://" + edge;
    c.procs.push(spawn(serverBinary(), ["edge", "-config", path.join(data, "cluster.json"), "-identity", path.join(data, "gateway.pem"), "-auth", path.join(data, "edge-auth.json"), "-listen", edge, "-user-rate", "100000", "-ip-rate", "100000"], { stdio: "ignore" }));
    const tok = c.token("probe");
    for (let i = 0; ; i++) {
      try {
        const r = await fetch(c.edge + "/v1/rooms", { method: "POST", headers: { Authorization: "Bearer " + tok }, body: JSON.stringify({ room: "probe-room" }) });
        if (r.status === 201 || r.status === 409) break;
      } catch {}
      if (i > 600) throw new Error("the edge did not serve in 30 s");
      await new Promise((r) => setTimeout(r, 50));
    }
    return c;
  }

  /** The index of the replica that is primary of shard 0. */
  async primary() {
    for (let i = 0; i < 400; i++) {
      for (const [k, h] of this.status.entries()) {
        try {
          const all = await (await fetch(`http://${h}/status`)).json();
          if (all.some((n) => n.some((st) => st.shard === 0 && st.primary && st.status === "normal"))) return k;
        } catch {}
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error("no primary of shard 0 in 20 s");
  }

  /** SIGKILL of replica i, by its PID. */
  async killReplica(i) {
    const p = this.procs[i];
    const exited = new Promise((res) => (p.exitCode !== null ? res() : p.once("exit", res)));
    p.kill("SIGKILL");
    await exited;
  }

  async stop(sync = false) {
    for (const c of this.clients.splice(0)) c.close();
    const waits = this.procs.map((p) => (p.exitCode !== null || p.signalCode !== null ? null : new Promise((res) => { p.once("exit", res); p.kill("SIGKILL"); })));
    if (sync) { rmSync(this.dir, { recursive: true, force: true }); return; }
    await Promise.all(waits.filter(Boolean));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
Cluster3.prototype.token = DevServer.prototype.token;
Cluster3.prototype.client = DevServer.prototype.client;

/** Reads n message events (bounded: 60 s), failing on any other event. */
export async function collect(sub, n) {
  const got = [];
  const deadline = Date.now() + 60000;
  while (got.length < n) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`only ${got.length} of ${n} messages in 60 s`);
    let t;
    const r = await Promise.race([sub.next(), new Promise((res) => { t = setTimeout(() => res({ timeout: true }), left); })]);
    clearTimeout(t);
    if (r.timeout) continue;
    if (r.done) throw new Error(`subscription ended after ${got.length} of ${n}`);
    if (r.value.type !== "message") throw new Error(`after ${got.length} messages: unexpected ${JSON.stringify(r.value)}`);
    got.push(r.value.message);
  }
  return got;
}
