//! The conformance runner for the Rust SDK: the scenarios of
//! ../conformance/scenarios.json against a real `tigerchat dev` that the
//! test starts (from $TIGERCHAT_BIN or built with `go build`), on free
//! 127.0.0.1 ports, stopped by PID with its temp dir removed.

use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tigerchat::{verify_chain, Client, Error, Event, HistoryItem, Message, Options, ZERO_HASH};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("TIGERCHAT_BIN") {
            return PathBuf::from(p);
        }
        // Cargo's scratch dir for integration tests (inside the target
        // dir), so that the built server is not left in the system temp dir.
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tigerchat");
        let st = Command::new("go").args(["build", "-o"]).arg(&out).arg("./cmd/tigerchat").current_dir(root()).env("CGO_ENABLED", "0").status();
        assert!(matches!(st, Ok(s) if s.success()), "go build ./cmd/tigerchat failed: {st:?} (a missing server fails this test)");
        out
    })
    .clone()
}

fn free_tcp() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

fn free_udp_base() -> u16 {
    for i in 0..200u32 {
        let base = 20000 + ((std::process::id().wrapping_mul(7919) + i * 104729) % 30000) as u16;
        let socks: Vec<_> = (0..3).filter_map(|k| UdpSocket::bind(("127.0.0.1", base + k)).ok()).collect();
        if socks.len() == 3 {
            return base;
        }
    }
    panic!("no 3 consecutive free UDP ports");
}

struct Dev {
    dir: PathBuf,
    args: Vec<String>,
    child: Child,
    edge: String,
    secret: Vec<u8>,
}

impl Dev {
    fn start() -> Dev {
        let dir = std::env::temp_dir().join(format!("tigerchat-rust-dev-{}-{}", std::process::id(), rand_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        let edge = free_tcp();
        let args: Vec<String> = vec![
            "dev".into(), "-dir".into(), dir.join("data").to_string_lossy().into(), "-shards".into(), "1".into(),
            "-http".into(), free_tcp(), "-base-port".into(), free_udp_base().to_string(), "-edge".into(), edge.clone(), "-edge-h3=false".into(), "-tls=false".into(),
        ];
        let child = spawn(&dir, &args, 0);
        let auth: Value = serde_json::from_slice(&std::fs::read(dir.join("data/edge-auth.json")).unwrap()).unwrap();
        let secret = base64::engine::general_purpose::STANDARD.decode(auth["keys"][0]["secret"].as_str().unwrap()).unwrap();
        Dev { dir, args, child, edge: format!("http://{edge}"), secret }
    }

    fn restart(&mut self) {
        // SIGTERM: the edge closes its WebSockets with 1001.
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn(&self.dir, &self.args, 1);
    }

    fn token(&self, user: &str, ttl: i64) -> String {
        let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let msg = format!("{}.{}", b64(&json!({"alg":"HS256","kid":"dev","typ":"JWT"})),
            b64(&json!({"tenant":"dev","sub":user,"rooms":"*","aud":["tigerchat"],"iat":now-60,"exp":now+ttl})));
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).unwrap();
        mac.update(msg.as_bytes());
        format!("{msg}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    fn opts(&self, user: &str) -> Options {
        let mut o = Options::new(self.edge.clone()).token(self.token(user, 3600));
        o.backoff_min = Duration::from_millis(50);
        o.backoff_max = Duration::from_secs(1);
        o
    }

    async fn client(&self, user: &str) -> Client {
        Client::connect(self.opts(user)).await.unwrap_or_else(|e| panic!("connect as {user}: {e}"))
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64
}

fn spawn(dir: &Path, args: &[String], n: usize) -> Child {
    for attempt in 0..20 {
        let log = dir.join(format!("dev-{n}-{attempt}.log"));
        let f = std::fs::File::create(&log).unwrap();
        let mut child = Command::new(binary()).args(args).stdout(Stdio::from(f.try_clone().unwrap())).stderr(Stdio::from(f)).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut s = String::new();
            let _ = std::fs::File::open(&log).and_then(|mut f| f.read_to_string(&mut s));
            if s.contains("ready in") {
                return child;
            }
            if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                if attempt == 19 {
                    panic!("tigerchat dev did not start:\n{s}");
                }
                std::thread::sleep(Duration::from_millis(100)); // a port still held
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    unreachable!()
}

async fn collect(sub: &mut tigerchat::Subscription, n: usize) -> Vec<Message> {
    let mut got = Vec::new();
    while got.len() < n {
        match tokio::time::timeout(Duration::from_secs(60), sub.next()).await {
            Ok(Some(Event::Message(m))) => got.push(m),
            Ok(other) => panic!("after {} messages: unexpected {other:?}", got.len()),
            Err(_) => panic!("only {} of {n} messages in 60 s", got.len()),
        }
    }
    got
}

fn seqs(m: &[Message]) -> Vec<u64> {
    m.iter().map(|m| m.seq).collect()
}

fn range(a: u64, b: u64) -> Vec<u64> {
    (a..=b).collect()
}

async fn two_clients_chat(s: &mut Dev) {
    let (alice, bob) = (s.client("alice").await, s.client("bob").await);
    alice.create_room("r", false).await.unwrap();
    bob.join("r").await.unwrap();
    let mut sa = alice.subscribe("r", 0, Some(0)).await.unwrap();
    let mut sb = bob.subscribe("r", 0, Some(0)).await.unwrap();
    let mut res = Vec::new();
    for b in ["a1", "a2", "a3"] {
        res.push(alice.post("r", b, None, 0).await.unwrap());
    }
    for b in ["b1", "b2", "b3"] {
        res.push(bob.post("r", b, None, 0).await.unwrap());
    }
    assert_eq!(res.iter().map(|r| (r.seq, r.duplicate)).collect::<Vec<_>>(), range(1, 6).into_iter().map(|x| (x, false)).collect::<Vec<_>>());
    for sub in [&mut sa, &mut sb] {
        let got = collect(sub, 6).await;
        assert_eq!(seqs(&got), range(1, 6));
        assert_eq!(got.iter().map(|m| m.body.as_str()).collect::<Vec<_>>(), ["a1", "a2", "a3", "b1", "b2", "b3"]);
        assert_eq!(got.iter().map(|m| m.author.as_str()).collect::<Vec<_>>(), ["alice", "alice", "alice", "bob", "bob", "bob"]);
    }
}

async fn resume_after_edge_restart(s: &mut Dev) {
    let (alice, bob) = (s.client("alice").await, s.client("bob").await);
    bob.create_room("r", false).await.unwrap();
    let mut sa = alice.subscribe("r", 0, Some(0)).await.unwrap();
    let mut res = Vec::new();
    for i in 1..=10 {
        res.push(bob.post("r", &format!("m{i}"), None, 0).await.unwrap().seq);
    }
    let mut got = collect(&mut sa, 10).await;
    let b2 = bob.clone();
    let later = tokio::spawn(async move {
        let mut r = Vec::new();
        for i in 11..=20 {
            r.push(b2.post("r", &format!("m{i}"), None, 0).await.unwrap().seq);
        }
        r
    });
    s.restart();
    res.extend(later.await.unwrap());
    got.extend(collect(&mut sa, 10).await);
    assert_eq!(seqs(&got), range(1, 20));
    assert_eq!(got.iter().map(|m| m.body.clone()).collect::<Vec<_>>(), (1..=20).map(|i| format!("m{i}")).collect::<Vec<_>>());
    assert_eq!(res, range(1, 20));
    use std::sync::atomic::Ordering::Relaxed;
    assert!(alice.stats().reconnects.load(Relaxed) >= 1 && bob.stats().reconnects.load(Relaxed) >= 1);
}

async fn retried_post_duplicate(s: &mut Dev) {
    let c = s.client("dup").await;
    c.create_room("r", false).await.unwrap();
    let a = c.post("r", "x", Some("key-1"), 0).await.unwrap();
    let b = c.post("r", "x", Some("key-1"), 0).await.unwrap();
    assert_eq!((a.seq, a.duplicate, a.key.as_str()), (1, false, "key-1"));
    assert_eq!((b.seq, b.duplicate, b.key.as_str()), (1, true, "key-1"));
    let g = c.post("r", "y", None, 0).await.unwrap();
    assert_eq!((g.seq, g.duplicate, g.key.len()), (2, false, 36));
    let l = c.history_page("r", 0, Some(0), None, 0).await.unwrap();
    assert_eq!((l.head_seq, l.messages.len()), (2, 2));
}

async fn rate_limited_honoured(s: &mut Dev) {
    let c = s.client("hasty").await;
    let mut limited: Option<Error> = None;
    for _ in 0..60 {
        match c.call(json!({"cmd": "ping"})).await {
            Ok(_) => {}
            Err(e) if e.code == "rate_limited" => {
                limited = Some(e);
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let l = limited.expect("60 pings: no rate_limited");
    assert!(l.retry_after.is_some_and(|d| d > Duration::ZERO), "{l}");
    c.create_room("r", false).await.unwrap();
    let mut hs = Vec::new();
    for i in 0..60 {
        let c = c.clone();
        hs.push(tokio::spawn(async move { c.post("r", &format!("m{i}"), None, 0).await.unwrap().seq }));
    }
    let mut got = Vec::new();
    for h in hs {
        got.push(h.await.unwrap());
    }
    got.sort();
    assert_eq!(got, range(1, 60));
}

async fn post_many(s: &Dev, room: &str, n: usize) -> Vec<u64> {
    let mut hs = Vec::new();
    for u in 0..n.div_ceil(30) {
        let c = s.client(&format!("poster{u}")).await;
        c.join(room).await.unwrap();
        for i in u * 30..n.min((u + 1) * 30) {
            let (c, room) = (c.clone(), room.to_string());
            hs.push(tokio::spawn(async move { c.post(&room, &format!("m{i}"), None, 0).await.unwrap().seq }));
        }
    }
    let mut out = Vec::new();
    for h in hs {
        out.push(h.await.unwrap());
    }
    out.sort();
    out
}

async fn history_paging_1000(s: &mut Dev) {
    let c = s.client("reader").await;
    c.create_room("r", false).await.unwrap();
    assert_eq!(post_many(s, "r", 1000).await, range(1, 1000));
    let first = 1; // the cluster keeps every message
    for backward in [false, true] {
        let items = c.history("r", 0, backward, 10).await.unwrap();
        let mut msgs: Vec<Message> = Vec::new();
        let mut truncs = Vec::new();
        for it in items {
            match it {
                HistoryItem::Message(m) => msgs.push(m),
                HistoryItem::Truncated { from, to } => truncs.push((from, to)),
            }
        }
        if backward {
            msgs.reverse();
        }
        assert_eq!(seqs(&msgs), range(first, 1000), "backward={backward}");
        assert!(truncs.is_empty(), "backward={backward}: {truncs:?}");
        verify_chain("dev", "", &msgs).unwrap();
    }
}

async fn thread(s: &mut Dev) {
    let c = s.client("threader").await;
    c.create_room("r", false).await.unwrap();
    c.post("r", "p1", None, 0).await.unwrap();
    let mut sub = c.subscribe("r", 1, Some(0)).await.unwrap();
    let t1 = c.post("r", "t1", None, 1).await.unwrap();
    let t2 = c.post("r", "t2", None, 1).await.unwrap();
    let p2 = c.post("r", "p2", None, 0).await.unwrap();
    assert_eq!((t1.seq, t1.thread, t2.seq, p2.seq, p2.thread), (1, 1, 2, 2, 0));
    let got = collect(&mut sub, 2).await;
    assert_eq!(got.iter().map(|m| (m.seq, m.thread, m.body.as_str())).collect::<Vec<_>>(), [(1, 1, "t1"), (2, 1, "t2")]);
    assert_eq!(c.history_page("r", 1, Some(0), None, 0).await.unwrap().messages.len(), 2);
    assert_eq!(c.post("r", "x", None, 99).await.unwrap_err().code, "unknown_thread");
}

async fn dm(s: &mut Dev) {
    let (alice, bob, carol) = (s.client("alice").await, s.client("bob").await, s.client("carol").await);
    let da = alice.open_dm("bob").await.unwrap();
    let db = bob.open_dm("alice").await.unwrap();
    let room = da["room"].as_str().unwrap().to_string();
    assert!(room.starts_with("dm-") && db["room"] == da["room"] && da["created"] == true && db["created"] == false);
    alice.post(&room, "hi", None, 0).await.unwrap();
    let l = bob.history_page(&room, 0, Some(0), None, 0).await.unwrap();
    assert_eq!(l.messages.iter().map(|m| (m.body.as_str(), m.author.as_str())).collect::<Vec<_>>(), [("hi", "alice")]);
    assert_eq!(carol.history_page(&room, 0, Some(0), None, 0).await.unwrap_err().code, "not_member");
    assert_eq!(carol.join(&room).await.unwrap_err().code, "direct_room");
}

async fn hash_chain(s: &mut Dev) {
    let mut o = s.opts("verifier");
    o.verify_hashes = true;
    let c = Client::connect(o).await.unwrap();
    c.create_room("r", false).await.unwrap();
    let mut sub = c.subscribe("r", 0, Some(0)).await.unwrap();
    for i in 0..20 {
        c.post("r", &format!("m{i}"), None, 0).await.unwrap();
    }
    collect(&mut sub, 20).await; // panics on a HashMismatch event
    let l = c.history_page("r", 0, Some(0), None, 0).await.unwrap();
    verify_chain("dev", ZERO_HASH, &l.messages).unwrap();
    assert_eq!(l.head_hash, l.messages.last().unwrap().hash);
    let mut forged = l.messages.clone();
    forged[7].body = "forged".into();
    let e = verify_chain("dev", ZERO_HASH, &forged).unwrap_err();
    assert!(e.code == "hash_mismatch" && e.message.contains("seq 8"), "{e}");
    let mut relinked = l.messages.clone();
    relinked[11].prev_hash = relinked[9].hash.clone();
    let e = verify_chain("dev", ZERO_HASH, &relinked).unwrap_err();
    assert!(e.code == "hash_mismatch" && e.message.contains("seq 12"), "{e}");
    assert_eq!(verify_chain("other", ZERO_HASH, &l.messages).unwrap_err().code, "hash_mismatch");
}

async fn bad_input(s: &mut Dev) {
    let c = s.client("careful").await;
    c.create_room("r", false).await.unwrap();
    let big = "b".repeat(4097);
    for (room, body, key, code) in [("r", "", None, "body_empty"), ("r", big.as_str(), None, "body_too_large"), ("bad room", "x", None, "invalid_room"), ("r", "x", Some("bad key!"), "invalid_idempotency_key")] {
        let e = c.post(room, body, key, 0).await.unwrap_err();
        assert!(e.code == code && e.local, "{e}, want local {code}");
    }
    let e = c.post("nowhere", "x", None, 0).await.unwrap_err();
    assert!(e.code == "unknown_room" && !e.local, "{e}");
    assert_eq!(c.post("r", "still here", None, 0).await.unwrap().seq, 1);
    assert_eq!(c.stats().connects.load(std::sync::atomic::Ordering::Relaxed), 1);
}

async fn post_batch_coalescing(s: &mut Dev) {
    let c = s.client("batcher").await;
    c.create_room("r", false).await.unwrap();
    let mut hs = Vec::new();
    for i in 0..36 {
        let c = c.clone();
        hs.push(tokio::spawn(async move { c.post("r", &format!("m{i}"), None, 0).await.unwrap().seq }));
    }
    let mut got = Vec::new();
    for h in hs {
        got.push(h.await.unwrap());
    }
    got.sort();
    assert_eq!(got, range(1, 36));
    use std::sync::atomic::Ordering::Relaxed;
    let st = c.stats();
    let (pf, bf, bp) = (st.post_frames.load(Relaxed), st.batch_frames.load(Relaxed), st.batch_posts.load(Relaxed));
    assert!(bf >= 1 && pf + bf < 36 && pf + bp == 36, "post frames {pf}, batch frames {bf}, batched posts {bp}");
}

async fn token_refresh(s: &mut Dev) {
    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let mut o = s.opts("late");
    o.token = Some(s.token("late", 3));
    o.refresh_before = None; // only after close 4001
    let fresh = s.token("late", 3600);
    let calls2 = calls.clone();
    o.token_fn = Some(Arc::new(move || {
        let (t, c) = (fresh.clone(), calls2.clone());
        Box::pin(async move {
            c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(t)
        })
    }));
    let late = Client::connect(o).await.unwrap();
    let poster = s.client("poster").await;
    poster.create_room("r", false).await.unwrap();
    let mut sub = late.subscribe("r", 0, Some(0)).await.unwrap();
    for i in 1..=3 {
        poster.post("r", &format!("m{i}"), None, 0).await.unwrap();
    }
    use std::sync::atomic::Ordering::Relaxed;
    for _ in 0..1500 {
        if late.stats().closes_4001.load(Relaxed) >= 1 && late.stats().reconnects.load(Relaxed) >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(late.stats().closes_4001.load(Relaxed) >= 1 && late.stats().reconnects.load(Relaxed) >= 1, "no 4001 and reconnect");
    for i in 4..=6 {
        poster.post("r", &format!("m{i}"), None, 0).await.unwrap();
    }
    assert_eq!(seqs(&collect(&mut sub, 6).await), range(1, 6));
    assert!(calls.load(Relaxed) >= 1);
}

/// A 3-process cluster: `tigerchat dev` creates the files once, then three
/// `tigerchat start` processes (each with /status) and a `tigerchat edge`
/// without rate limits. The Dev inside owns the dir; its child is the edge.
struct Cluster3 {
    dev: Dev,
    replicas: Vec<Child>,
    status: Vec<String>,
}

impl Cluster3 {
    fn start() -> Cluster3 {
        let mut dev = Dev::start(); // creates the files, then stops
        let _ = Command::new("kill").arg("-TERM").arg(dev.child.id().to_string()).status();
        let _ = dev.child.wait();
        let data = dev.dir.join("data");
        let (mut replicas, mut status) = (Vec::new(), Vec::new());
        for i in 0..3 {
            let h = free_tcp();
            replicas.push(
                Command::new(binary())
                    .args(["start", "-config"]).arg(data.join("cluster.json"))
                    .args(["-replica", &i.to_string(), "-data"]).arg(data.join(format!("replica-{i}")))
                    .arg("-identity").arg(data.join(format!("replica-{i}.pem")))
                    .args(["-http", &h]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap(),
            );
            status.push(h);
        }
        let edge = free_tcp();
        dev.child = Command::new(binary())
            .args(["edge", "-config"]).arg(data.join("cluster.json"))
            .arg("-identity").arg(data.join("gateway.pem")).arg("-auth").arg(data.join("edge-auth.json"))
            .args(["-listen", &edge, "-user-rate", "100000", "-ip-rate", "100000"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        dev.edge = format!("http://{edge}");
        Cluster3 { dev, replicas, status }
    }

    fn primary(&self) -> usize {
        for _ in 0..400 {
            for (i, h) in self.status.iter().enumerate() {
                if let Some(body) = http_get(h, "/status") {
                    if let Ok(all) = serde_json::from_str::<Value>(&body) {
                        let hit = all.as_array().into_iter().flatten().flat_map(|n| n.as_array().into_iter().flatten())
                            .any(|st| st["shard"] == 0 && st["primary"] == true && st["status"] == "normal");
                        if hit {
                            return i;
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no primary of shard 0 in 20 s");
    }
}

impl Drop for Cluster3 {
    fn drop(&mut self) {
        for r in &mut self.replicas {
            let _ = r.kill();
            let _ = r.wait();
        }
    }
}

fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

async fn kill_primary_500_posts() {
    let mut c3 = tokio::task::spawn_blocking(Cluster3::start).await.unwrap();
    let mut o = c3.dev.opts("poster");
    o.post_timeout = Duration::from_secs(60);
    let poster = loop {
        match Client::connect(o.clone()).await {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await, // the edge is starting
        }
    };
    for _ in 0..600 {
        if poster.create_room("r", false).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    const N: u64 = 500;
    let mut readers = Vec::new();
    for u in ["sub1", "sub2"] {
        let mut sub = c3.dev.client(u).await.subscribe("r", 0, Some(0)).await.unwrap();
        readers.push(tokio::spawn(async move { collect(&mut sub, N as usize).await }));
    }
    let sem = Arc::new(tokio::sync::Semaphore::new(8)); // 8 posts in flight
    let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut hs = Vec::new();
    for i in 1..=N {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let (p, a) = (poster.clone(), acked.clone());
        hs.push(tokio::spawn(async move {
            let r = p.post("r", &format!("p{i}"), None, 0).await;
            a.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            drop(permit);
            (i, r)
        }));
        if i == 150 {
            while acked.load(std::sync::atomic::Ordering::Relaxed) < 100 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let k = tokio::task::block_in_place(|| c3.primary());
            eprintln!("kill -9 replica {k} (primary) after at least 100 replies");
            let _ = c3.replicas[k].kill();
            let _ = c3.replicas[k].wait();
        }
    }
    let mut by_seq = std::collections::HashMap::new();
    for h in hs {
        let (i, r) = h.await.unwrap();
        let r = r.unwrap_or_else(|e| panic!("post p{i}: {e}"));
        assert!(by_seq.insert(r.seq, format!("p{i}")).is_none(), "seq {} twice", r.seq);
    }
    let mut seqs_sorted: Vec<u64> = by_seq.keys().copied().collect();
    seqs_sorted.sort();
    assert_eq!(seqs_sorted, range(1, N));
    for r in readers {
        let got = r.await.unwrap();
        assert_eq!(seqs(&got), range(1, N));
        for m in &got {
            assert_eq!(Some(&m.body), by_seq.get(&m.seq), "seq {}", m.seq);
        }
    }
}

// Scenarios this runner does not run (see sdk/README.md).
const NOT_IN_THIS_RUNNER: &[&str] = &[];

mod scripted_edge;

// A scripted edge closes with 4008, then 1001 (scripted_edge); then, on a
// real edge, a subscriber whose application reads only after 60 posts were
// acknowledged gets 1..60 once each, in order.
async fn slow_consumer_4008_resume(s: &mut Dev) {
    scripted_edge::close_codes_resume().await;
    let owner = s.client("owner").await;
    owner.create_room("r0", false).await.unwrap();
    let slow = s.client("slow").await;
    let mut sub = slow.subscribe("r0", 0, Some(0)).await.unwrap();
    assert_eq!(post_many(s, "r0", 60).await, range(1, 60));
    assert_eq!(seqs(&collect(&mut sub, 60).await), range(1, 60));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance() {
    let file: Value = serde_json::from_slice(&std::fs::read(root().join("sdk/conformance/scenarios.json")).unwrap()).unwrap();
    for sc in file["scenarios"].as_array().unwrap() {
        let id = sc["id"].as_str().unwrap();
        if NOT_IN_THIS_RUNNER.contains(&id) {
            eprintln!("scenario {id}: not implemented in the Rust runner");
            continue;
        }
        eprintln!("scenario {id}");
        if id == "kill_primary_500_posts" {
            kill_primary_500_posts().await;
            continue;
        }
        let mut s = tokio::task::spawn_blocking(Dev::start).await.unwrap();
        match id {
            "two_clients_chat" => two_clients_chat(&mut s).await,
            "resume_after_edge_restart" => resume_after_edge_restart(&mut s).await,
            "token_refresh" => token_refresh(&mut s).await,
            "rate_limited_honoured" => rate_limited_honoured(&mut s).await,
            "retried_post_duplicate" => retried_post_duplicate(&mut s).await,
            "history_paging_1000" => history_paging_1000(&mut s).await,
            "thread" => thread(&mut s).await,
            "dm" => dm(&mut s).await,
            "hash_chain" => hash_chain(&mut s).await,
            "bad_input" => bad_input(&mut s).await,
            "post_batch_coalescing" => post_batch_coalescing(&mut s).await,
            "slow_consumer_4008_resume" => slow_consumer_4008_resume(&mut s).await,
            other => panic!("scenario {other} has no implementation in the Rust runner"),
        }
    }
}
