// The conformance runner for the JS SDK: the scenarios of
// ../../conformance/scenarios.json against a real `tigerchat dev`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { DevServer, Cluster3, collect } from "./harness.js";
import { startScriptedEdge } from "./scripted_edge.js";
import { Client, TigerChatError, Truncated, verifyChain, ZERO_HASH } from "../src/index.js";

const seqs = (msgs) => msgs.map((m) => m.seq);
const range = (a, b) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

async function withDev(fn) {
  const s = await DevServer.start();
  try { await fn(s); } finally { await s.stop(); }
}

// postMany spreads n posts over users of 30 posts each (the edge's
// per-user burst is 40 requests).
async function postMany(s, room, n, body, who = "poster") {
  const out = [];
  for (let u = 0; u * 30 < n; u++) {
    const c = await s.client(`${who}${u}`);
    await c.join(room);
    for (let i = u * 30; i < Math.min(n, (u + 1) * 30); i++) out.push(c.post(room, body(i)));
  }
  return Promise.all(out);
}

const scenarios = {
  kill_primary_500_posts: null, // runs on Cluster3, below
  two_clients_chat: (s) => async () => {
    const alice = await s.client("alice"), bob = await s.client("bob");
    await alice.createRoom("r");
    await bob.join("r");
    const sa = await alice.subscribe("r", { since: 0 }), sb = await bob.subscribe("r", { since: 0 });
    const res = [];
    for (const b of ["a1", "a2", "a3"]) res.push(await alice.post("r", b));
    for (const b of ["b1", "b2", "b3"]) res.push(await bob.post("r", b));
    assert.deepEqual(res.map((r) => [r.seq, r.duplicate]), range(1, 6).map((x) => [x, false]));
    for (const sub of [sa, sb]) {
      const got = await collect(sub, 6);
      assert.deepEqual(seqs(got), range(1, 6));
      assert.deepEqual(got.map((m) => m.body), ["a1", "a2", "a3", "b1", "b2", "b3"]);
      assert.deepEqual(got.map((m) => m.author), ["alice", "alice", "alice", "bob", "bob", "bob"]);
    }
  },
  resume_after_edge_restart: (s) => async () => {
    const alice = await s.client("alice"), bob = await s.client("bob");
    await bob.createRoom("r");
    const sa = await alice.subscribe("r", { since: 0 });
    const res = [];
    for (let i = 1; i <= 10; i++) res.push(await bob.post("r", `m${i}`));
    const first = await collect(sa, 10);
    const later = (async () => { for (let i = 11; i <= 20; i++) res.push(await bob.post("r", `m${i}`)); })();
    await s.restart();
    await later;
    const got = first.concat(await collect(sa, 10));
    assert.deepEqual(seqs(got), range(1, 20));
    assert.deepEqual(got.map((m) => m.body), range(1, 20).map((i) => `m${i}`));
    assert.deepEqual(res.map((r) => r.seq), range(1, 20));
    assert.ok(alice.stats.reconnects >= 1 && bob.stats.reconnects >= 1, JSON.stringify([alice.stats, bob.stats]));
  },
  slow_consumer_4008_resume: (s) => async () => {
    // A scripted edge closes with 4008 after seqs 1..3, then with 1001
    // after a replay of 3 and 4..5: the client resubscribes from 3, then
    // from 5, and the application gets 1..6 once each, in order.
    const edge = await startScriptedEdge([
      { since: 0, seqs: [1, 2, 3], close: 4008 }, { since: 3, seqs: [3, 4, 5], close: 1001 }, { since: 5, seqs: [6], close: null }]);
    try {
      const c = await Client.connect({ url: edge.url, token: "a.b.c", backoffMinMs: 10, backoffMaxMs: 50 });
      const sub = await c.subscribe("r", { since: 0 });
      assert.deepEqual(seqs(await collect(sub, 6)), range(1, 6));
      assert.deepEqual(edge.sinces, [0, 3, 5]);
      assert.deepEqual([c.stats.closes4008, c.stats.closes1001, c.stats.reconnects], [1, 1, 2], JSON.stringify(c.stats));
      c.close();
    } finally {
      await edge.stop();
    }
    // Against the real edge: a subscriber whose application reads only
    // after 3 rooms of 60 posts were acknowledged gets each room's 1..60
    // once, in order (whether or not the edge cut it with 4008).
    const owner = await s.client("owner");
    const names = ["r0", "r1", "r2"];
    for (const r of names) await owner.createRoom(r);
    const slow = await s.client("slow");
    const subs = [];
    for (const r of names) subs.push(await slow.subscribe(r, { since: 0 }));
    const pad = "x".repeat(200);
    for (const r of names) await postMany(s, r, 60, (i) => `${i}${pad}`, `${r}-poster`);
    for (const sub of subs) assert.deepEqual(seqs(await collect(sub, 60)), range(1, 60));
  },
  token_refresh: (s) => async () => {
    const calls = { early: 0, late: 0 };
    const mk = (user, refreshBeforeMs) => s.client(user, {
      token: s.token(user, 3), refreshBeforeMs,
      tokenFunc: async () => { calls[user]++; return s.token(user, 3600); },
    });
    const early = await mk("early", 2000), late = await mk("late", -1);
    const poster = await s.client("poster");
    await poster.createRoom("r");
    const subs = [await early.subscribe("r", { since: 0 }), await late.subscribe("r", { since: 0 })];
    for (let i = 1; i <= 3; i++) await poster.post("r", `m${i}`);
    for (let i = 0; i < 1500 && !(late.stats.closes4001 >= 1 && late.stats.reconnects >= 1); i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(late.stats.closes4001 >= 1 && late.stats.reconnects >= 1, JSON.stringify(late.stats));
    for (let i = 0; i < 1500 && early.stats.refreshes < 1; i++) await new Promise((r) => setTimeout(r, 20));
    const w = await early.whoami();
    assert.ok(Date.parse(w.expires) - Date.now() > 30 * 60 * 1000, `early: expiry ${w.expires} after auth`);
    for (let i = 4; i <= 6; i++) await poster.post("r", `m${i}`);
    for (const sub of subs) assert.deepEqual(seqs(await collect(sub, 6)), range(1, 6));
    assert.ok(calls.early >= 1 && calls.late >= 1, JSON.stringify(calls));
  },
  rate_limited_honoured: (s) => async () => {
    const c = await s.client("hasty");
    let limited = null;
    for (let i = 0; i < 60 && !limited; i++) {
      try { await c.call({ cmd: "ping" }); } catch (e) { if (e.code === "rate_limited") limited = e; else throw e; }
    }
    assert.ok(limited instanceof TigerChatError && limited.retryAfterMs > 0, String(limited));
    await c.createRoom("r");
    const res = await Promise.all(range(1, 60).map((i) => c.post("r", `m${i}`)));
    assert.deepEqual(res.map((r) => r.seq).sort((a, b) => a - b), range(1, 60));
    assert.ok(c.stats.rateLimited >= 1, JSON.stringify(c.stats));
  },
  retried_post_duplicate: (s) => async () => {
    const c = await s.client("dup");
    await c.createRoom("r");
    const a = await c.post("r", "x", { key: "key-1" });
    const b = await c.post("r", "x", { key: "key-1" });
    assert.deepEqual([a.seq, a.duplicate, a.key], [1, false, "key-1"]);
    assert.deepEqual([b.seq, b.duplicate, b.key], [1, true, "key-1"]);
    const g = await c.post("r", "y");
    assert.deepEqual([g.seq, g.duplicate, g.key.length], [2, false, 36]);
    const l = await c.historyPage("r", { since: 0 });
    assert.deepEqual([l.head_seq, l.messages.length], [2, 2]);
  },
  history_paging_1000: (s) => async () => {
    const c = await s.client("reader");
    await c.createRoom("r");
    const res = await postMany(s, "r", 1000, (i) => `m${i}`);
    assert.deepEqual(res.map((r) => r.seq).sort((a, b) => a - b), range(1, 1000));
    const fwd = [], ft = [];
    for await (const x of c.history("r", { pageSize: 10 })) (x instanceof Truncated ? ft : fwd).push(x);
    const first = 1; // the cluster keeps every message
    assert.deepEqual(seqs(fwd), range(first, 1000));
    assert.deepEqual(ft.map((t) => [t.from, t.to]), []);
    await verifyChain("dev", "", fwd);
    const back = [], bt = [];
    for await (const x of c.history("r", { pageSize: 10, backward: true })) (x instanceof Truncated ? bt : back).push(x);
    assert.deepEqual(seqs(back), range(first, 1000).reverse());
    assert.deepEqual(bt.map((t) => [t.from, t.to]), []);
  },
  thread: (s) => async () => {
    const c = await s.client("threader");
    await c.createRoom("r");
    await c.post("r", "p1");
    const sub = await c.subscribe("r", { thread: 1, since: 0 });
    const t1 = await c.post("r", "t1", { thread: 1 }), t2 = await c.post("r", "t2", { thread: 1 }), p2 = await c.post("r", "p2");
    assert.deepEqual([t1.seq, t1.thread, t2.seq, p2.seq, p2.thread], [1, 1, 2, 2, 0]);
    const got = await collect(sub, 2);
    assert.deepEqual(got.map((m) => [m.seq, m.thread, m.body]), [[1, 1, "t1"], [2, 1, "t2"]]);
    assert.equal((await c.historyPage("r", { thread: 1, since: 0 })).messages.length, 2);
    await assert.rejects(c.post("r", "x", { thread: 99 }), (e) => e.code === "unknown_thread");
  },
  dm: (s) => async () => {
    const alice = await s.client("alice"), bob = await s.client("bob"), carol = await s.client("carol");
    const da = await alice.openDM("bob"), db = await bob.openDM("alice");
    assert.ok(da.room.startsWith("dm-") && da.room === db.room && da.created && !db.created, JSON.stringify([da, db]));
    await alice.post(da.room, "hi");
    const l = await bob.historyPage(da.room, { since: 0 });
    assert.deepEqual(l.messages.map((m) => [m.body, m.author]), [["hi", "alice"]]);
    await assert.rejects(carol.historyPage(da.room, { since: 0 }), (e) => e.code === "not_member");
    await assert.rejects(carol.join(da.room), (e) => e.code === "direct_room");
  },
  hash_chain: (s) => async () => {
    const c = await s.client("verifier", { verifyHashes: true });
    await c.createRoom("r");
    const sub = await c.subscribe("r", { since: 0 });
    for (let i = 0; i < 20; i++) await c.post("r", `m${i}`);
    await collect(sub, 20);
    const l = await c.historyPage("r", { since: 0 });
    await verifyChain("dev", ZERO_HASH, l.messages);
    assert.equal(l.head_hash, l.messages.at(-1).hash);
    const forged = l.messages.map((m) => ({ ...m }));
    forged[7].body = "forged";
    await assert.rejects(verifyChain("dev", ZERO_HASH, forged), (e) => e.code === "hash_mismatch" && e.message.includes("seq 8"));
    const relinked = l.messages.map((m) => ({ ...m }));
    relinked[11].prev_hash = relinked[9].hash;
    await assert.rejects(verifyChain("dev", ZERO_HASH, relinked), (e) => e.code === "hash_mismatch" && e.message.includes("seq 12"));
    await assert.rejects(verifyChain("other", ZERO_HASH, l.messages), (e) => e.code === "hash_mismatch");
  },
  bad_input: (s) => async () => {
    const c = await s.client("careful");
    await c.createRoom("r");
    for (const [room, body, opts, code] of [["r", "", {}, "body_empty"], ["r", "b".repeat(4097), {}, "body_too_large"], ["bad room", "x", {}, "invalid_room"], ["r", "x", { key: "bad key!" }, "invalid_idempotency_key"]]) {
      assert.throws(() => c.post(room, body, opts), (e) => e instanceof TigerChatError && e.code === code && e.local);
    }
    await assert.rejects(c.post("nowhere", "x"), (e) => e.code === "unknown_room" && !e.local);
    assert.equal((await c.post("r", "still here")).seq, 1);
    assert.equal(c.stats.connects, 1);
  },
  post_batch_coalescing: (s) => async () => {
    const c = await s.client("batcher");
    await c.createRoom("r");
    const res = await Promise.all(range(1, 36).map((i) => c.post("r", `m${i}`)));
    assert.deepEqual(res.map((r) => r.seq).sort((a, b) => a - b), range(1, 36));
    assert.ok(c.stats.batchFrames >= 1 && c.stats.postFrames + c.stats.batchFrames < 36 && c.stats.batchPosts + c.stats.postFrames === 36, JSON.stringify(c.stats));
  },
};

async function killPrimary() {
  const s = await Cluster3.start();
  try {
    const poster = await s.client("poster", { postTimeoutMs: 60000 });
    await poster.createRoom("r");
    const subs = [await (await s.client("sub1")).subscribe("r", { since: 0 }), await (await s.client("sub2")).subscribe("r", { since: 0 })];
    const n = 500;
    // The subscribers read while the posts go on.
    const readers = subs.map((sub) => collect(sub, n));
    const res = new Array(n);
    let acked = 0, inflight = 0, killed = null;
    const waiters = [];
    const post = async (i) => {
      res[i] = await poster.post("r", `p${i + 1}`);
      acked++;
      inflight--;
      waiters.splice(0).forEach((w) => w());
    };
    const all = [];
    for (let i = 0; i < n; i++) {
      while (inflight >= 8) await new Promise((r) => waiters.push(r)); // 8 in flight
      inflight++;
      all.push(post(i));
      if (i === 150) {
        while (acked < 100) await new Promise((r) => waiters.push(r));
        killed = await s.primary();
        await s.killReplica(killed);
      }
    }
    await Promise.all(all);
    assert.ok(killed !== null);
    assert.deepEqual(res.map((r) => r.seq).sort((a, b) => a - b), range(1, n));
    const bySeq = new Map(res.map((r, i) => [r.seq, `p${i + 1}`]));
    for (const got of await Promise.all(readers)) {
      assert.deepEqual(seqs(got), range(1, n));
      for (const m of got) assert.equal(m.body, bySeq.get(m.seq), `seq ${m.seq}`);
    }
  } finally {
    await s.stop();
  }
}

const file = JSON.parse(readFileSync(new URL("../../conformance/scenarios.json", import.meta.url), "utf8"));
for (const sc of file.scenarios) {
  if (sc.id === "kill_primary_500_posts") {
    test(sc.id, { timeout: 120000 }, killPrimary);
    continue;
  }
  test(sc.id, { timeout: 120000 }, async () => {
    const f = scenarios[sc.id];
    assert.ok(f, `scenario ${sc.id} has no implementation in the JS runner`);
    await withDev(async (s) => { await f(s)(); });
  });
}
