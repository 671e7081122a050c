// TigerChat JavaScript SDK: one WebSocket to an edge that reconnects by
// itself, subscriptions that resume from the last delivered seq, keyed
// posts retried until a deadline and coalesced into post_batch frames,
// typed errors, history iterators, rooms and hash-chain verification.
// Zero runtime dependencies: the platform's WebSocket, fetch-free.

/** Codes the SDK adds to the protocol's. */
export const SDK_CODES = ["connection_lost", "deadline_exceeded", "closed", "hash_mismatch"];

/** Every documented protocol code (docs/protocol.md §5). */
export const CODES = [
  "missing_token", "malformed_token", "invalid_signature", "token_expired", "token_not_yet_valid",
  "wrong_audience", "wrong_tenant", "invalid_claims", "forbidden_room", "bad_request", "unknown_command",
  "request_too_large", "invalid_range", "rate_limited", "too_many_connections", "too_many_subscriptions", "already_subscribed",
  "not_subscribed", "unavailable", "not_found", "internal", "invalid_tenant", "invalid_user", "invalid_room",
  "reserved_room", "invalid_idempotency_key", "body_empty", "body_too_large", "invalid_limit", "invalid_seq",
  "invalid_flags", "audit_retention", "direct_self", "unknown_room", "unknown_thread", "not_member",
  "private_room", "room_exists", "direct_room", "seq_beyond_head", "tenants_full", "rooms_full", "tenant_full",
  "members_full", "threads_full", "storage_unavailable", "audit_room", "not_creator", "duplicate_removed",
  "storage_full", "malformed", "unknown_operation",
];

export const LIMITS = Object.freeze({ idMax: 64, bodyMax: 4096, postBatchMax: 64, frameMax: 64 << 10, readLimitMax: 256, subscriptionMax: 64 });

/** A refusal by the edge or the cluster, or an SDK error. */
export class TigerChatError extends Error {
  constructor(code, message = "", { retryAfterMs = 0, local = false } = {}) {
    super(`tigerchat: ${code}${message ? ": " + message : ""}`);
    this.name = "TigerChatError";
    this.code = code;
    this.retryAfterMs = retryAfterMs;
    this.local = local;
  }
  get temporary() {
    return ["rate_limited", "unavailable", "too_many_connections", "connection_lost"].includes(this.code);
  }
}

/** Seqs from..to are no longer retained (yielded by history, not final). */
export class Truncated {
  constructor(from, to) { this.from = from; this.to = to; }
}

const fromWire = (e) => new TigerChatError(e.code, e.message || "", { retryAfterMs: e.retry_after_ms || 0 });
const local = (code, msg) => new TigerChatError(code, msg, { local: true });
const ID_RE = /^[A-Za-z0-9._-]{1,64}$/;
const enc = new TextEncoder();

function checkRoom(room) { if (typeof room !== "string" || !ID_RE.test(room)) throw local("invalid_room", `room id ${JSON.stringify(room)} is not 1-64 bytes of [A-Za-z0-9._-]`); }
function checkUser(user) { if (typeof user !== "string" || !ID_RE.test(user)) throw local("invalid_user", `user id ${JSON.stringify(user)} is not 1-64 bytes of [A-Za-z0-9._-]`); }
function checkKey(key) { if (typeof key !== "string" || !ID_RE.test(key)) throw local("invalid_idempotency_key", `key ${JSON.stringify(key)} is not 1-64 bytes of [A-Za-z0-9._-]`); }
function checkBody(body, max) {
  if (typeof body !== "string" || body.length === 0) throw local("body_empty", "empty body");
  const n = enc.encode(body).length;
  if (n > max) throw local("body_too_large", `body of ${n} bytes above the limit of ${max}`);
}

/** A random idempotency key (UUID v4). */
// newKey makes a UUID version 7: the time in milliseconds, then random
// bits, so that keys made one after another sort in time order, which the
// cluster stores more cheaply than random keys.
export function newKey() {
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  let ms = Date.now();
  for (let i = 5; i >= 0; i--) { b[i] = ms % 256; ms = Math.floor(ms / 256); }
  b[6] = (b[6] & 0x0f) | 0x70; b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export const ZERO_HASH = "0".repeat(64);

function hexToBytes(h) {
  if (!/^[0-9a-f]{64}$/i.test(h)) return null;
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = parseInt(h.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** The message hash of docs/protocol.md §7, as hex. */
export async function messageHash(tenant, m) {
  const prev = hexToBytes(m.prev_hash);
  if (!prev) throw local("hash_mismatch", `seq ${m.seq}: prev_hash is not 32 bytes of hex`);
  const body = m.body_b64 !== undefined ? Uint8Array.from(atob(m.body_b64), (c) => c.charCodeAt(0)) : enc.encode(m.body);
  const t = enc.encode(tenant), r = enc.encode(m.room), a = enc.encode(m.author);
  const buf = new Uint8Array(32 + 2 + t.length + 2 + r.length + 8 + 8 + 2 + a.length + 8 + 4 + body.length);
  const dv = new DataView(buf.buffer);
  let o = 0;
  buf.set(prev, o); o += 32;
  const str16 = (s) => { dv.setUint16(o, s.length, true); o += 2; buf.set(s, o); o += s.length; };
  str16(t); str16(r);
  dv.setBigUint64(o, BigInt(m.thread), true); o += 8;
  dv.setBigUint64(o, BigInt(m.seq), true); o += 8;
  str16(a);
  dv.setBigInt64(o, BigInt(m.time_ns), true); o += 8;
  dv.setUint32(o, body.length, true); o += 4;
  buf.set(body, o);
  const d = new Uint8Array(await globalThis.crypto.subtle.digest("SHA-256", buf));
  return [...d].map((x) => x.toString(16).padStart(2, "0")).join("");
}

/** Checks m's hash and, when prevHash is given, its chaining. */
export async function verifyMessage(tenant, prevHash, m) {
  if (prevHash && m.prev_hash !== prevHash) throw local("hash_mismatch", `room ${m.room} thread ${m.thread} seq ${m.seq}: prev_hash does not chain`);
  if (m.seq === 1 && m.prev_hash !== ZERO_HASH) throw local("hash_mismatch", `room ${m.room} thread ${m.thread} seq 1: prev_hash is not zero`);
  const h = await messageHash(tenant, m);
  if (h !== m.hash) throw local("hash_mismatch", `room ${m.room} thread ${m.thread} seq ${m.seq}: hash is not the SHA-256 of the message`);
}

/** Checks consecutive messages of one log. */
export async function verifyChain(tenant, prevHash, msgs) {
  for (let i = 0; i < msgs.length; i++) {
    if (i > 0 && msgs[i].seq !== msgs[i - 1].seq + 1) prevHash = "";
    await verifyMessage(tenant, prevHash, msgs[i]);
    prevHash = msgs[i].hash;
  }
}

function tokenClaims(tok) {
  try {
    const p = tok.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const c = JSON.parse(atob(p + "=".repeat((4 - (p.length % 4)) % 4)));
    return { exp: c.exp ? c.exp * 1000 : 0, tenant: c.tenant || "", user: c.sub || "" };
  } catch { return { exp: 0, tenant: "", user: "" }; }
}

const sleep = (ms, signal) => new Promise((res) => {
  const t = setTimeout(res, ms);
  signal?.addEventListener("abort", () => { clearTimeout(t); res(); }, { once: true });
});

/** One log's events, in seq order, each once, across reconnects. */
export class Subscription {
  constructor(client, room, thread, since) {
    this.client = client; this.room = room; this.thread = thread;
    this.last = since ?? null; this.lastHash = ""; this.gen = 0;
    this.queue = []; this.waiters = []; this.ended = false; this.handlers = new Set();
    this.chain = Promise.resolve();
  }
  /** Calls fn for each event ({type: "message"|"truncated"|"unsubscribed"|"hash_mismatch", ...}). */
  on(fn) { this.handlers.add(fn); return () => this.handlers.delete(fn); }
  _push(ev) {
    if (this.ended) return;
    for (const h of this.handlers) { try { h(ev); } catch (e) { queueMicrotask(() => { throw e; }); } }
    const w = this.waiters.shift();
    if (w) w({ value: ev, done: false }); else this.queue.push(ev);
  }
  _end() {
    if (this.ended) return;
    this.ended = true;
    for (const w of this.waiters.splice(0)) w({ value: undefined, done: true });
  }
  /** The next event (or done when the subscription ended). */
  next() {
    if (this.queue.length) return Promise.resolve({ value: this.queue.shift(), done: false });
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((res) => this.waiters.push(res));
  }
  [Symbol.asyncIterator]() { return { next: () => this.next(), return: async () => { await this.close(); return { value: undefined, done: true }; } }; }
  /** Unsubscribes. */
  async close() {
    this.client._dropSub(this);
    try { await this.client.call({ cmd: "unsubscribe", room: this.room, thread: this.thread }); } catch { /* gone already */ }
    this._end();
  }
}

/**
 * A connection to an edge that survives disconnects.
 * Options: url, token, tokenFunc, refreshBeforeMs (30000; negative: only
 * after 4001), backoffMinMs (250), backoffMaxMs (10000), reconnectMax (0:
 * unbounded), postTimeoutMs (30000), postFramesInFlight (4), batchMax (64),
 * bodyMax (4096), callTimeoutMs (20000), verifyHashes, WebSocket (a
 * constructor; default globalThis.WebSocket), logf.
 */
export class Client {
  static async connect(opts) {
    const c = new Client(opts);
    await c._start();
    return c;
  }

  constructor(o) {
    if (!o || (!o.token && !o.tokenFunc)) throw local("missing_token", "token or tokenFunc is required");
    let u = String(o.url || "");
    if (u.startsWith("http://")) u = "ws://" + u.slice(7);
    else if (u.startsWith("https://")) u = "wss://" + u.slice(8);
    else if (!u.startsWith("ws://") && !u.startsWith("wss://")) throw local("bad_request", `url ${u}: want http(s):// or ws(s)://`);
    u = u.replace(/\/+$/, "");
    if (!u.endsWith("/v1/ws")) u += "/v1/ws";
    this.wsURL = u;
    this.o = {
      refreshBeforeMs: 30000, backoffMinMs: 250, backoffMaxMs: 10000, reconnectMax: 0, postTimeoutMs: 30000,
      postFramesInFlight: 4, batchMax: 64, bodyMax: 4096, callTimeoutMs: 20000, verifyHashes: false, logf: () => {}, ...o,
    };
    this.o.batchMax = Math.min(Math.max(1, this.o.batchMax), 64);
    this.WS = this.o.WebSocket || globalThis.WebSocket;
    if (!this.WS) throw local("bad_request", "no WebSocket: pass options.WebSocket (Node 20: run with --experimental-websocket, or use the ws package)");
    this.token = o.token || ""; const cl = tokenClaims(this.token);
    this.tokenExp = cl.exp; this.tenant = cl.tenant; this.user = cl.user;
    this.forceRefresh = false;
    this.ws = null; this.gen = 0; this.nextId = 1; this.pending = new Map();
    this.subs = new Map(); this.closed = false; this.abort = new AbortController();
    this.readyWaiters = [];
    this.queue = []; this.inflight = 0; this.pauseUntil = 0; this.batchCap = this.o.batchMax; this.postSeq = 0;
    this.stats = { connects: 0, reconnects: 0, closes4001: 0, closes4008: 0, closes1001: 0, rateLimited: 0, unavailable: 0, retries: 0, postFrames: 0, batchFrames: 0, batchPosts: 0, refreshes: 0 };
  }

  async _refresh() {
    const tok = await this.o.tokenFunc();
    this.stats.refreshes++;
    const cl = tokenClaims(tok);
    this.token = tok; this.tokenExp = cl.exp; this.forceRefresh = false;
    if (cl.tenant) { this.tenant = cl.tenant; this.user = cl.user; }
    return tok;
  }

  async _currentToken() {
    const need = this.forceRefresh || !this.token || (this.tokenExp && this.tokenExp - Date.now() < this.o.refreshBeforeMs);
    if (need && this.o.tokenFunc) return this._refresh();
    return this.token;
  }

  // _dial opens one WebSocket; resolves with it once open, rejects with a
  // typed error.
  _dial(token) {
    return new Promise((resolve, reject) => {
      const url = this.wsURL + "?token=" + encodeURIComponent(token);
      let ws;
      try { ws = new this.WS(url); } catch (e) { reject(new TigerChatError("connection_lost", String(e))); return; }
      let opened = false;
      const timer = setTimeout(() => { try { ws.close(); } catch {} reject(new TigerChatError("connection_lost", "dial timeout")); }, this.o.callTimeoutMs);
      ws.onopen = () => { opened = true; clearTimeout(timer); resolve(ws); };
      // A refused handshake is not visible to a browser WebSocket: the
      // caller asks whoami over REST why (401, 429 with a typed body).
      // Node's WebSocket (undici, Node 20) fires only error for it, no
      // close: either one settles the dial (a second is a no-op).
      ws.onerror = () => {
        if (opened) return;
        clearTimeout(timer);
        reject(new TigerChatError("connection_lost", "handshake failed"));
      };
      ws.onclose = (ev) => {
        if (opened) return;
        clearTimeout(timer);
        reject(new TigerChatError("connection_lost", `handshake closed (${ev.code})`));
      };
    });
  }

  async _handshakeError(token) {
    // The WebSocket API hides refused handshakes; REST tells the code.
    try {
      const base = this.wsURL.replace(/^ws/, "http").replace(/\/v1\/ws$/, "");
      const r = await fetch(base + "/v1/whoami", { headers: { Authorization: "Bearer " + token } });
      // The edge answers, and accepts the token now: what refused the
      // handshake was momentary (a rate limit that refilled since): retry.
      if (r.ok) return new TigerChatError("unavailable", "WebSocket handshake refused while the edge answers: retrying", { retryAfterMs: this.o.backoffMinMs });
      const b = await r.json();
      return b.error ? fromWire(b.error) : null;
    } catch { return null; }
  }

  async _connectOnce() {
    for (let attempt = 0; ; attempt++) {
      const tok = await this._currentToken();
      try {
        return await this._dial(tok);
      } catch (e) {
        const why = typeof fetch === "function" ? await this._handshakeError(tok) : null;
        if (why?.code === "token_expired" && this.o.tokenFunc && attempt === 0) { this.forceRefresh = true; continue; }
        throw why || e;
      }
    }
  }

  async _start() {
    for (let attempt = 0; ; attempt++) {
      try {
        const ws = await this._connectOnce();
        this._install(ws);
        return;
      } catch (e) {
        const wait = this._retryable(e, attempt);
        if (wait === null || e.code === "connection_lost" || attempt >= 50) throw e;
        await sleep(Math.max(wait, this.o.backoffMinMs / 2 + Math.random() * this.o.backoffMinMs));
      }
    }
  }

  _install(ws) {
    this.stats.connects++;
    this.gen++;
    const gen = this.gen;
    this.ws = ws;
    ws.onmessage = (ev) => this._frame(ws, ev.data);
    ws.onclose = (ev) => this._lost(ws, ev.code);
    for (const w of this.readyWaiters.splice(0)) w();
    for (const s of this.subs.values()) if (s.gen !== gen) { s.gen = gen; this._subscribeOn(gen, s); }
    this._armRefresh();
    this._pump();
  }

  _armRefresh() {
    clearTimeout(this.refreshTimer);
    if (!this.o.tokenFunc || !this.tokenExp || this.o.refreshBeforeMs <= 0) return;
    const gen = this.gen;
    this.refreshTimer = setTimeout(async () => {
      if (this.closed || gen !== this.gen) return;
      try {
        const tok = await this._refresh();
        await this.call({ cmd: "auth", token: tok });
      } catch (e) { this.o.logf(`tigerchat: refresh: ${e}`); this.tokenExp = Date.now() + this.o.refreshBeforeMs + this.o.backoffMaxMs; }
      this._armRefresh();
    }, Math.max(0, this.tokenExp - Date.now() - this.o.refreshBeforeMs));
  }

  _lost(ws, code) {
    if (this.ws !== ws) return;
    this.ws = null;
    clearTimeout(this.refreshTimer);
    if (code === 4001) { this.stats.closes4001++; this.forceRefresh = true; }
    else if (code === 4008) this.stats.closes4008++;
    else if (code === 1001) this.stats.closes1001++;
    const lost = new TigerChatError("connection_lost", `connection closed (${code}) before the reply`);
    for (const [, p] of this.pending) p(null, lost);
    this.pending.clear();
    if (this.closed) return;
    this.o.logf(`tigerchat: connection closed (code ${code}); reconnecting`);
    this._reconnect();
  }

  async _reconnect() {
    let failures = 0, lastErr = null;
    await sleep(Math.random() * this.o.backoffMinMs, this.abort.signal);
    while (!this.closed) {
      try {
        const ws = await this._connectOnce();
        if (this.closed) { ws.close(1000); return; }
        this.stats.reconnects++;
        this._install(ws);
        return;
      } catch (e) {
        failures++; lastErr = e;
        if (["missing_token", "malformed_token", "invalid_signature", "token_not_yet_valid", "wrong_audience", "wrong_tenant", "invalid_claims", "token_expired"].includes(e.code)) {
          if (!this.o.tokenFunc) { this._fail(e); return; }
          this.forceRefresh = true;
        }
        if (this.o.reconnectMax > 0 && failures >= this.o.reconnectMax) { this._fail(lastErr); return; }
        let d = Math.min(this.o.backoffMinMs * 2 ** Math.min(failures, 20), this.o.backoffMaxMs);
        d = d / 2 + Math.random() * (d / 2);
        await sleep(d, this.abort.signal);
      }
    }
  }

  _fail(err) {
    this.error = err;
    this.close();
  }

  _frame(ws, data) {
    if (typeof data !== "string") return;
    let f;
    try { f = JSON.parse(data); } catch { return; }
    if (f.event) { this._event(f); return; }
    if (f.id === undefined) return;
    const p = this.pending.get(f.id);
    if (!p) return;
    this.pending.delete(f.id);
    if (f.error) p(null, fromWire(f.error)); else p(f, null);
  }

  async _ready(signal) {
    while (!this.ws) {
      if (this.closed) throw this.error || new TigerChatError("closed", "client closed");
      await new Promise((res) => { this.readyWaiters.push(res); signal?.addEventListener("abort", res, { once: true }); this.abort.signal.addEventListener("abort", res, { once: true }); });
      if (signal?.aborted) throw new TigerChatError("deadline_exceeded", "aborted");
    }
    return this.ws;
  }

  // _send writes raw with id on ws; cb(reply, err) runs once.
  _send(ws, id, raw, cb) {
    if (ws.readyState !== 1) { cb(null, new TigerChatError("connection_lost", "connection closed")); return; }
    let done = false;
    const timer = setTimeout(() => { if (this.pending.delete(id)) { done = true; cb(null, new TigerChatError("connection_lost", "no reply in time")); } }, this.o.callTimeoutMs);
    this.pending.set(id, (r, e) => { if (done) return; done = true; clearTimeout(timer); cb(r, e); });
    try { ws.send(raw); } catch (e) { this.pending.delete(id); clearTimeout(timer); cb(null, new TigerChatError("connection_lost", String(e))); }
  }

  /** Sends one command (an object with cmd) once; resolves with the reply. */
  async call(cmd, { signal } = {}) {
    const ws = await this._ready(signal);
    const id = this.nextId++;
    const raw = JSON.stringify({ id, ...cmd });
    return new Promise((res, rej) => this._send(ws, id, raw, (r, e) => (e ? rej(e) : res(r))));
  }

  _retryable(err, attempt) {
    if (!(err instanceof TigerChatError)) return null;
    if (err.code === "rate_limited") this.stats.rateLimited++;
    else if (err.code === "unavailable") this.stats.unavailable++;
    else if (err.code !== "too_many_connections" && err.code !== "connection_lost") return null;
    if (err.retryAfterMs > 0) return err.retryAfterMs;
    return Math.min(this.o.backoffMinMs * 2 ** Math.min(attempt, 10), this.o.backoffMaxMs) / 2;
  }

  // _do is call with retries of temporary refusals, for commands safe to
  // repeat.
  async _do(cmd) {
    const deadline = Date.now() + this.o.postTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      try {
        const r = await this.call(cmd);
        delete r.id; delete r.ok;
        return r;
      } catch (e) {
        const wait = this._retryable(e, attempt);
        if (wait === null || Date.now() + wait > deadline || this.closed) throw e;
        this.stats.retries++;
        await sleep(wait, this.abort.signal);
      }
    }
  }

  ping() { return this._do({ cmd: "ping" }); }
  whoami() { return this._do({ cmd: "whoami" }); }
  createRoom(room, { private: priv = false, audit = false, retention = 0 } = {}) {
    checkRoom(room);
    const c = { cmd: "create_room", room };
    if (priv) c.private = true;
    if (audit) c.audit = true;
    if (retention) c.retention = retention;
    return this._do(c);
  }
  join(room) { checkRoom(room); return this._do({ cmd: "join", room }); }
  leave(room) { checkRoom(room); return this._do({ cmd: "leave", room }); }
  invite(room, user) { checkRoom(room); checkUser(user); return this._do({ cmd: "invite", room, user }); }
  openDM(peer) { checkUser(peer); return this._do({ cmd: "open_dm", peer }); }
  snapshot(room, { thread = 0, limit = 0 } = {}) {
    checkRoom(room);
    if (limit < 0 || limit > 256) throw local("invalid_limit", `limit ${limit} outside 0..256`);
    const c = { cmd: "snapshot", room };
    if (thread) c.thread = thread;
    if (limit) c.limit = limit;
    return this._do(c);
  }
  /** One page: at most one of since, from, before. */
  historyPage(room, { thread = 0, since, from, before, limit = 0 } = {}) {
    checkRoom(room);
    if (limit < 0 || limit > 256) throw local("invalid_limit", `limit ${limit} outside 1..256`);
    const c = { cmd: "history", room };
    if (thread) c.thread = thread;
    const n = [since, from, before].filter((x) => x !== undefined).length;
    if (n > 1) throw local("invalid_range", "at most one of since, from, before");
    if (before !== undefined && before < 1) throw local("invalid_seq", `before ${before}: want >= 1`);
    if (since !== undefined) c.since = since;
    if (from !== undefined) c.from = from;
    if (before !== undefined) c.before = before;
    if (limit) c.limit = limit;
    return this._do(c);
  }

  /**
   * Pages through a log: yields messages (ascending, or descending with
   * backward) and Truncated markers for seqs no longer retained.
   */
  async *history(room, { thread = 0, backward = false, start = 0, pageSize = 100 } = {}) {
    const size = Math.min(Math.max(1, pageSize), 256);
    if (!backward) {
      let next = Math.max(start, 1);
      for (;;) {
        const l = await this.historyPage(room, { thread, since: next - 1, limit: size });
        if (l.messages.length && l.messages[0].seq > next) yield new Truncated(next, l.messages[0].seq - 1);
        for (const m of l.messages) { yield m; next = m.seq + 1; }
        if (!l.more || !l.messages.length) return;
      }
    }
    let before = start || undefined;
    for (;;) {
      const l = await this.historyPage(room, { thread, before, limit: size });
      // An edge asked for the messages before B when B-limit is below the
      // oldest retained seq answers from the oldest on, past B: keep < B.
      const msgs = l.messages.filter((m) => before === undefined || m.seq < before).reverse();
      if (!msgs.length) {
        if (before !== undefined && l.first_seq > 1 && before <= l.first_seq) yield new Truncated(1, before - 1);
        return;
      }
      for (const m of msgs) yield m;
      const low = msgs[msgs.length - 1].seq;
      if (low <= 1) return;
      if (!l.more || low <= l.first_seq) {
        if (l.first_seq > 1 && low <= l.first_seq) yield new Truncated(1, low - 1);
        return;
      }
      before = low;
    }
  }

  /**
   * Follows a log. since: deliver every message after it first (resume);
   * omitted: from the current head. Resolves once the edge accepted.
   */
  async subscribe(room, { thread = 0, since } = {}) {
    checkRoom(room);
    const key = `${room}\u0000${thread}`;
    if (this.subs.has(key)) throw local("already_subscribed", `already subscribed to ${room} thread ${thread}`);
    if (this.subs.size >= 64) throw local("too_many_subscriptions", "at most 64 subscriptions per client");
    const s = new Subscription(this, room, thread, since);
    this.subs.set(key, s);
    const first = new Promise((res, rej) => { s.first = { res, rej }; });
    if (this.ws) { s.gen = this.gen; this._subscribeOn(this.gen, s); }
    try {
      await first;
    } catch (e) {
      this._dropSub(s);
      throw e;
    }
    return s;
  }

  _dropSub(s) {
    const key = `${s.room}\u0000${s.thread}`;
    if (this.subs.get(key) === s) this.subs.delete(key);
  }

  async _subscribeOn(gen, s) {
    for (let attempt = 0; ; attempt++) {
      if (this.subs.get(`${s.room}\u0000${s.thread}`) !== s || gen !== this.gen || !this.ws) return;
      const ws = this.ws;
      const c = { cmd: "subscribe", room: s.room };
      if (s.thread) c.thread = s.thread;
      if (s.last !== null) c.since = s.last;
      const id = this.nextId++;
      let err = null;
      await new Promise((res) => this._send(ws, id, JSON.stringify({ id, ...c }), (r, e) => {
        // Before any event of the subscription (same task): fix the start.
        if (!e && s.last === null) s.last = r.since;
        if (!e) s.resync = false;
        err = e;
        res();
      }));
      if (!err || err.code === "already_subscribed") { s.first?.res(); s.first = null; return; }
      if (err.code === "connection_lost" || this.closed) return;
      const wait = this._retryable(err, attempt);
      if (wait !== null && attempt < 20) { await sleep(wait, this.abort.signal); continue; }
      if (s.first) { s.first.rej(err); s.first = null; return; }
      this._dropSub(s);
      s._push({ type: "unsubscribed", room: s.room, thread: s.thread, error: err });
      s._end();
      return;
    }
  }

  _event(f) {
    const s = this.subs.get(`${f.room}\u0000${f.thread || 0}`);
    if (!s) return;
    if (f.event === "message") {
      if (s.resync || (s.last !== null && f.seq <= s.last)) return;
      const prev = s.last !== null && f.seq === s.last + 1 ? s.lastHash : "";
      s.last = f.seq; s.lastHash = f.hash;
      const m = { ...f }; delete m.event;
      if (!this.o.verifyHashes) { s._push({ type: "message", room: f.room, thread: f.thread, message: m }); return; }
      // Verification is async; keep delivery order with a per-sub chain.
      const tenant = this.tenant;
      s.chain = s.chain.then(() => verifyMessage(tenant, prev, m).then(
        () => s._push({ type: "message", room: f.room, thread: f.thread, message: m }),
        (error) => s._push({ type: "hash_mismatch", room: f.room, thread: f.thread, message: m, error })));
    } else if (f.event === "truncated") {
      if (s.resync || (s.last !== null && f.to <= s.last)) return;
      if (s.checked !== f.from) {
        // The first time: renew the subscription from the last delivered
        // seq, which reads the log again (an edge can declare a range gone
        // that the cluster still holds, after a failover). Only a
        // truncation that comes back is reported.
        s.checked = f.from;
        s.resync = true;
        const gen = this.gen;
        this.call({ cmd: "unsubscribe", room: s.room, thread: s.thread }).then(
          () => this._subscribeOn(gen, s),
          (e) => { if (e.code === "not_subscribed") this._subscribeOn(gen, s); });
        return;
      }
      s.last = f.to; s.lastHash = "";
      s.chain = s.chain.then(() => s._push({ type: "truncated", room: f.room, thread: f.thread, from: f.from, to: f.to }));
    } else if (f.event === "unsubscribed") {
      const err = f.error ? fromWire(f.error) : new TigerChatError("unavailable", "unsubscribed");
      if (err.code === "unavailable") { const gen = this.gen; setTimeout(() => this._subscribeOn(gen, s), this.o.backoffMinMs); return; }
      this._dropSub(s);
      s.chain = s.chain.then(() => { s._push({ type: "unsubscribed", room: f.room, thread: f.thread, error: err }); s._end(); });
    }
  }

  /**
   * Posts body to room; resolves with {room, thread, seq, hash, time,
   * time_ns, duplicate, key, attempts}. Options: key, thread, signal.
   */
  post(room, body, { key, thread = 0, signal } = {}) {
    checkRoom(room);
    checkBody(body, this.o.bodyMax);
    if (key === undefined) key = newKey(); else checkKey(key);
    if (this.closed) return Promise.reject(this.error || new TigerChatError("closed", "client closed"));
    const obj = { room, body, key };
    if (thread) obj.thread = thread;
    return new Promise((resolve, reject) => {
      const p = { n: ++this.postSeq, enc: JSON.stringify(obj), key, room, deadline: Date.now() + this.o.postTimeoutMs, attempts: 0, resolve, reject, signal };
      this.queue.push(p);
      queueMicrotask(() => this._pump());
    });
  }

  _insert(p) {
    let i = this.queue.findIndex((q) => q.n > p.n);
    if (i < 0) i = this.queue.length;
    this.queue.splice(i, 0, p);
  }

  _pump() {
    this.queue = this.queue.filter((p) => {
      if (p.signal?.aborted) { p.reject(new TigerChatError("deadline_exceeded", "aborted")); return false; }
      return true;
    });
    const now = Date.now();
    if (now < this.pauseUntil) {
      clearTimeout(this.pumpTimer);
      this.pumpTimer = setTimeout(() => this._pump(), this.pauseUntil - now);
      return;
    }
    while (this.inflight < this.o.postFramesInFlight && this.queue.length && this.ws && this.ws.readyState === 1) {
      let n = 0, size = 64;
      while (n < this.queue.length && n < this.batchCap) {
        if (n > 0 && size + this.queue[n].enc.length + 1 > LIMITS.frameMax - 4096) break;
        size += this.queue[n].enc.length + 1; n++;
      }
      const batch = this.queue.splice(0, n);
      this.inflight++;
      this._sendPosts(this.ws, batch);
    }
  }

  _sendPosts(ws, posts) {
    const id = this.nextId++;
    let raw;
    if (posts.length === 1) { this.stats.postFrames++; raw = `{"id":${id},"cmd":"post",` + posts[0].enc.slice(1); }
    else { this.stats.batchFrames++; this.stats.batchPosts += posts.length; raw = `{"id":${id},"cmd":"post_batch","posts":[` + posts.map((p) => p.enc).join(",") + "]}"; }
    const wasOpen = ws.readyState === 1;
    this._send(ws, id, raw, (r, e) => {
      this.inflight--;
      if (wasOpen) for (const p of posts) p.attempts++;
      if (e && e.code === "rate_limited") this.batchCap = Math.max(1, Math.floor(posts.length / 2));
      else if (!e) this.batchCap = Math.min(this.o.batchMax, this.batchCap * 2);
      const results = e ? posts.map(() => ({ error: e })) : posts.length === 1 ? [{ result: r }] : r.results.map((x) => (x.error ? { error: fromWire(x.error) } : { result: x }));
      posts.forEach((p, i) => {
        const { result, error } = results[i];
        if (!error) { const out = { ...result, attempts: p.attempts }; delete out.id; delete out.ok; p.resolve(out); return; }
        const wait = this._retryable(error, p.attempts);
        if (wait === null || this.closed) { p.reject(error); return; }
        if (Date.now() + wait > p.deadline) { p.reject(new TigerChatError("deadline_exceeded", `post ${p.key} to ${p.room}: outcome unknown after ${p.attempts} attempts; last: ${error.message}`)); return; }
        this.stats.retries++;
        if (error.code !== "connection_lost") this.pauseUntil = Math.max(this.pauseUntil, Date.now() + wait);
        this._insert(p);
      });
      this._pump();
    });
  }

  /** Closes the connection; pending calls and posts fail with closed. */
  close() {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort();
    clearTimeout(this.refreshTimer); clearTimeout(this.pumpTimer);
    const err = this.error || new TigerChatError("closed", "client closed");
    for (const p of this.queue.splice(0)) p.reject(err);
    for (const [, p] of this.pending) p(null, err);
    this.pending.clear();
    for (const s of this.subs.values()) s._end();
    this.subs.clear();
    for (const w of this.readyWaiters.splice(0)) w();
    if (this.ws) { try { this.ws.close(1000); } catch {} this.ws = null; }
  }
}
