//! TigerChat client SDK: one WebSocket to an edge that reconnects by itself,
//! subscriptions that resume from the last delivered seq, keyed posts retried
//! until a deadline and coalesced into `post_batch` frames, typed errors,
//! history paging, rooms and hash-chain verification (docs/protocol.md).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Limits checked locally (docs/protocol.md §6).
pub const ID_MAX: usize = 64;
pub const BODY_MAX_DEFAULT: usize = 4096;
pub const POST_BATCH_MAX: usize = 64;
pub const FRAME_MAX: usize = 64 << 10;
pub const READ_LIMIT_MAX: u32 = 256;
pub const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A refusal by the edge or the cluster (its `code`, e.g. `not_member`,
/// `rate_limited`), or an SDK error with one of the SDK's codes:
/// `connection_lost` (outcome unknown), `deadline_exceeded`, `closed`,
/// `hash_mismatch`. `local` is true when the SDK refused the call before
/// sending anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub code: String,
    pub message: String,
    pub retry_after: Option<Duration>,
    pub local: bool,
}

impl Error {
    fn new(code: &str, message: impl Into<String>) -> Self {
        Error { code: code.into(), message: message.into(), retry_after: None, local: false }
    }
    fn local(code: &str, message: impl Into<String>) -> Self {
        Error { local: true, ..Error::new(code, message) }
    }
    fn from_wire(v: &Value) -> Self {
        let ms = v.get("retry_after_ms").and_then(Value::as_u64).unwrap_or(0);
        Error {
            code: v.get("code").and_then(Value::as_str).unwrap_or("internal").to_string(),
            message: v.get("message").and_then(Value::as_str).unwrap_or("").to_string(),
            retry_after: if ms > 0 { Some(Duration::from_millis(ms)) } else { None },
            local: false,
        }
    }
    /// Whether retrying the same command later may succeed.
    pub fn temporary(&self) -> bool {
        matches!(self.code.as_str(), "rate_limited" | "unavailable" | "too_many_connections" | "connection_lost")
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tigerchat: {}", self.code)?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(d) = self.retry_after {
            write!(f, " (retry after {d:?})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// One message of a log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Message {
    pub room: String,
    #[serde(default)]
    pub thread: u64,
    pub seq: u64,
    pub hash: String,
    pub prev_hash: String,
    pub author: String,
    pub time: String,
    pub time_ns: String,
    /// The idempotency key of the post that made the message (not hashed).
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_b64: Option<String>,
}

/// The outcome of a post; `duplicate` is true when the key had already been
/// committed (then `seq` is the original seq).
#[derive(Debug, Clone, Deserialize, Default)]
pub struct PostResult {
    pub room: String,
    #[serde(default)]
    pub thread: u64,
    pub seq: u64,
    pub hash: String,
    pub time: String,
    pub time_ns: String,
    pub duplicate: bool,
    pub key: String,
    #[serde(skip)]
    pub attempts: u32,
}

/// One page of a log.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct Log {
    pub room: String,
    #[serde(default)]
    pub thread: u64,
    pub head_seq: u64,
    pub head_hash: String,
    pub first_seq: u64,
    pub more: bool,
    pub messages: Vec<Message>,
}

/// An event of a subscription.
#[derive(Debug, Clone)]
pub enum Event {
    Message(Message),
    /// Seqs `from..=to` are no longer retained; the next message is `to + 1`.
    Truncated { room: String, thread: u64, from: u64, to: u64 },
    /// The edge ended the subscription; the last event.
    Unsubscribed { room: String, thread: u64, error: Error },
    /// (verify_hashes) the message does not verify.
    HashMismatch { message: Message, error: Error },
}

/// An item of a history iteration.
#[derive(Debug, Clone)]
pub enum HistoryItem {
    Message(Message),
    /// Seqs `from..=to` are no longer retained by the cluster.
    Truncated { from: u64, to: u64 },
}

type TokenFuture = Pin<Box<dyn Future<Output = std::result::Result<String, String>> + Send>>;
/// A token-refresh callback.
pub type TokenFn = Arc<dyn Fn() -> TokenFuture + Send + Sync>;

/// Client options; `url` and one of `token` / `token_fn` are required.
#[derive(Clone)]
pub struct Options {
    pub url: String,
    pub token: Option<String>,
    pub token_fn: Option<TokenFn>,
    /// Refresh this long before `exp` (with the `auth` command); `None`:
    /// only after close 4001 or a `token_expired` handshake.
    pub refresh_before: Option<Duration>,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Consecutive failed reconnects at most (0: unbounded).
    pub reconnect_max: u32,
    pub post_timeout: Duration,
    pub post_frames_in_flight: usize,
    pub batch_max: usize,
    pub body_max: usize,
    pub call_timeout: Duration,
    pub verify_hashes: bool,
    pub event_buffer: usize,
}

impl Options {
    pub fn new(url: impl Into<String>) -> Self {
        Options {
            url: url.into(),
            token: None,
            token_fn: None,
            refresh_before: Some(Duration::from_secs(30)),
            backoff_min: Duration::from_millis(250),
            backoff_max: Duration::from_secs(10),
            reconnect_max: 0,
            post_timeout: Duration::from_secs(30),
            post_frames_in_flight: 4,
            batch_max: POST_BATCH_MAX,
            body_max: BODY_MAX_DEFAULT,
            call_timeout: Duration::from_secs(20),
            verify_hashes: false,
            event_buffer: 256,
        }
    }
    pub fn token(mut self, t: impl Into<String>) -> Self {
        self.token = Some(t.into());
        self
    }
}

/// Counters of what a client did.
#[derive(Debug, Default)]
pub struct Stats {
    pub connects: AtomicI64,
    pub reconnects: AtomicI64,
    pub closes_4001: AtomicI64,
    pub closes_4008: AtomicI64,
    pub closes_1001: AtomicI64,
    pub rate_limited: AtomicI64,
    pub retries: AtomicI64,
    pub post_frames: AtomicI64,
    pub batch_frames: AtomicI64,
    pub batch_posts: AtomicI64,
    pub refreshes: AtomicI64,
}

fn valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= ID_MAX && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-')
}

fn check_room(room: &str) -> Result<()> {
    if valid_id(room) {
        Ok(())
    } else {
        Err(Error::local("invalid_room", format!("room id {room:?} is not 1-64 bytes of [A-Za-z0-9._-]")))
    }
}

fn check_user(user: &str) -> Result<()> {
    if valid_id(user) {
        Ok(())
    } else {
        Err(Error::local("invalid_user", format!("user id {user:?} is not 1-64 bytes of [A-Za-z0-9._-]")))
    }
}

/// A new idempotency key: a UUID version 7 (the time in milliseconds, then
/// random bits), so that keys made one after another sort in time order,
/// which the cluster stores more cheaply than random keys.
pub fn new_key() -> String {
    let mut b = *uuid::Uuid::new_v4().as_bytes();
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    b[6] = (b[6] & 0x0f) | 0x70;
    uuid::Uuid::from_bytes(b).to_string()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for i in 0..32 {
        out[i] = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The message hash of docs/protocol.md §7, as hex.
pub fn message_hash(tenant: &str, m: &Message) -> Result<String> {
    use base64::Engine;
    let prev = unhex32(&m.prev_hash).ok_or_else(|| Error::local("hash_mismatch", format!("seq {}: prev_hash is not 32 bytes of hex", m.seq)))?;
    let ns: i64 = m.time_ns.parse().map_err(|_| Error::local("hash_mismatch", format!("seq {}: time_ns is not an integer", m.seq)))?;
    let body = match &m.body_b64 {
        Some(b) => base64::engine::general_purpose::STANDARD.decode(b).unwrap_or_default(),
        None => m.body.as_bytes().to_vec(),
    };
    let mut h = Sha256::new();
    h.update(prev);
    for s in [tenant, m.room.as_str()] {
        h.update((s.len() as u16).to_le_bytes());
        h.update(s.as_bytes());
    }
    h.update(m.thread.to_le_bytes());
    h.update(m.seq.to_le_bytes());
    h.update((m.author.len() as u16).to_le_bytes());
    h.update(m.author.as_bytes());
    h.update(ns.to_le_bytes());
    h.update((body.len() as u32).to_le_bytes());
    h.update(&body);
    Ok(hex(&h.finalize()))
}

/// Checks `m`'s hash and, when `prev_hash` is not empty, its chaining.
pub fn verify_message(tenant: &str, prev_hash: &str, m: &Message) -> Result<()> {
    if !prev_hash.is_empty() && m.prev_hash != prev_hash {
        return Err(Error::local("hash_mismatch", format!("room {} thread {} seq {}: prev_hash does not chain", m.room, m.thread, m.seq)));
    }
    if m.seq == 1 && m.prev_hash != ZERO_HASH {
        return Err(Error::local("hash_mismatch", format!("room {} thread {} seq 1: prev_hash is not zero", m.room, m.thread)));
    }
    if message_hash(tenant, m)? != m.hash {
        return Err(Error::local("hash_mismatch", format!("room {} thread {} seq {}: hash is not the SHA-256 of the message", m.room, m.thread, m.seq)));
    }
    Ok(())
}

/// Checks consecutive messages of one log.
pub fn verify_chain(tenant: &str, prev_hash: &str, msgs: &[Message]) -> Result<()> {
    let mut prev = prev_hash.to_string();
    for (i, m) in msgs.iter().enumerate() {
        if i > 0 && m.seq != msgs[i - 1].seq + 1 {
            prev.clear();
        }
        verify_message(tenant, &prev, m)?;
        prev = m.hash.clone();
    }
    Ok(())
}

struct Claims {
    exp: Option<Instant>,
    tenant: String,
}

fn token_claims(tok: &str) -> Claims {
    use base64::Engine;
    let none = Claims { exp: None, tenant: String::new() };
    let Some(p) = tok.split('.').nth(1) else { return none };
    let Ok(raw) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(p) else { return none };
    let Ok(v) = serde_json::from_slice::<Value>(&raw) else { return none };
    let now_unix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    let exp = v.get("exp").and_then(Value::as_f64).map(|e| {
        let left = e - now_unix;
        if left > 0.0 {
            Instant::now() + Duration::from_secs_f64(left)
        } else {
            Instant::now()
        }
    });
    Claims { exp, tenant: v.get("tenant").and_then(Value::as_str).unwrap_or("").to_string() }
}

type Reply = oneshot::Sender<Result<Value>>;

struct Conn {
    gen: u64,
    out: mpsc::UnboundedSender<WsMessage>,
    pending: Mutex<Option<HashMap<u64, (Reply, Option<Arc<SubState>>)>>>,
}

impl Conn {
    fn closed(&self) -> bool {
        self.pending.lock().unwrap().is_none()
    }
}

struct SubState {
    room: String,
    thread: u64,
    tx: mpsc::Sender<Event>,
    st: Mutex<SubPos>,
}

struct SubPos {
    last: Option<u64>,
    // resync: renewing the subscription after a truncation on a live
    // subscription (its events dropped until the new subscribe reply);
    // checked: the truncation (from) already re-checked once.
    resync: bool,
    checked: u64,
    last_hash: String,
    gen: u64,
    first: Option<oneshot::Sender<Result<()>>>,
}

struct TokenState {
    token: String,
    exp: Option<Instant>,
    tenant: String,
    force: bool,
}

struct Inner {
    o: Options,
    ws_url: String,
    next_id: AtomicU64,
    post_seq: AtomicU64,
    conn_tx: watch::Sender<Option<Arc<Conn>>>,
    conn_rx: watch::Receiver<Option<Arc<Conn>>>,
    subs: Mutex<HashMap<(String, u64), Arc<SubState>>>,
    tok: Mutex<TokenState>,
    stats: Stats,
    posts: mpsc::UnboundedSender<PostReq>,
    closed: watch::Sender<bool>,
    gen: AtomicU64,
}

struct PostReq {
    n: u64,
    room: String,
    key: String,
    enc: String,
    deadline: Instant,
    attempts: u32,
    res: oneshot::Sender<Result<PostResult>>,
}

/// A client of one edge; cheap to clone; reconnects by itself until
/// [`Client::close`].
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

/// A subscription: [`Subscription::next`] yields its events in seq order,
/// each once, across reconnects.
pub struct Subscription {
    rx: mpsc::Receiver<Event>,
    state: Arc<SubState>,
    client: Client,
}

impl Subscription {
    /// The next event; `None` once the subscription ended.
    pub async fn next(&mut self) -> Option<Event> {
        self.rx.recv().await
    }
    /// The last seq delivered (or skipped by a truncation).
    pub fn last(&self) -> Option<u64> {
        self.state.st.lock().unwrap().last
    }
    /// Unsubscribes.
    pub async fn close(self) -> Result<()> {
        let key = (self.state.room.clone(), self.state.thread);
        self.client.inner.subs.lock().unwrap().remove(&key);
        match self.client.call(json!({"cmd": "unsubscribe", "room": self.state.room, "thread": self.state.thread})).await {
            Err(e) if e.code == "not_subscribed" || e.code == "connection_lost" => Ok(()),
            r => r.map(|_| ()),
        }
    }
}

fn sleep_jitter(d: Duration) -> Duration {
    let half = d / 2;
    half + Duration::from_nanos(rand::thread_rng().gen_range(0..=half.as_nanos().max(1) as u64))
}

impl Client {
    /// Connects (retrying what the edge asks to retry) and starts the
    /// reconnect and post-batching tasks.
    pub async fn connect(o: Options) -> Result<Client> {
        if o.token.is_none() && o.token_fn.is_none() {
            return Err(Error::local("missing_token", "token or token_fn is required"));
        }
        let mut u = o.url.trim_end_matches('/').to_string();
        if let Some(rest) = u.strip_prefix("http://") {
            u = format!("ws://{rest}");
        } else if let Some(rest) = u.strip_prefix("https://") {
            u = format!("wss://{rest}");
        } else if !u.starts_with("ws://") && !u.starts_with("wss://") {
            return Err(Error::local("bad_request", format!("url {u}: want http(s):// or ws(s)://")));
        }
        if !u.ends_with("/v1/ws") {
            u.push_str("/v1/ws");
        }
        let token = o.token.clone().unwrap_or_default();
        let cl = token_claims(&token);
        let (conn_tx, conn_rx) = watch::channel(None);
        let (ptx, prx) = mpsc::unbounded_channel();
        let (closed, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            ws_url: u,
            next_id: AtomicU64::new(1),
            post_seq: AtomicU64::new(0),
            conn_tx,
            conn_rx,
            subs: Mutex::new(HashMap::new()),
            tok: Mutex::new(TokenState { token, exp: cl.exp, tenant: cl.tenant, force: false }),
            stats: Stats::default(),
            posts: ptx,
            closed,
            gen: AtomicU64::new(0),
            o,
        });
        let c = Client { inner };
        let mut attempt = 0u32;
        let (ws, code) = loop {
            match c.dial().await {
                Ok(ws) => break (ws, ()),
                Err(e) => {
                    let wait = c.retryable(&e, attempt);
                    if wait.is_none() || e.code == "connection_lost" || attempt >= 50 {
                        return Err(e);
                    }
                    tokio::time::sleep(wait.unwrap().max(sleep_jitter(c.inner.o.backoff_min))).await;
                    attempt += 1;
                }
            }
        };
        let _ = code;
        let cc = c.clone();
        tokio::spawn(async move { cc.run(ws).await });
        let cc = c.clone();
        tokio::spawn(async move { cc.batcher(prx).await });
        Ok(c)
    }

    /// What the client did so far.
    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// The token's tenant.
    pub fn tenant(&self) -> String {
        self.inner.tok.lock().unwrap().tenant.clone()
    }

    /// Closes the connection; pending calls fail with `closed`.
    pub fn close(&self) {
        let _ = self.inner.closed.send(true);
        if let Some(c) = self.inner.conn_rx.borrow().clone() {
            let _ = c.out.send(WsMessage::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() })));
        }
        self.inner.subs.lock().unwrap().clear();
    }

    fn is_closed(&self) -> bool {
        *self.inner.closed.borrow()
    }

    async fn refresh(&self) -> Result<String> {
        let f = self.inner.o.token_fn.clone().ok_or_else(|| Error::local("missing_token", "no token_fn"))?;
        let tok = f().await.map_err(|e| Error::new("token_expired", format!("token refresh: {e}")))?;
        self.inner.stats.refreshes.fetch_add(1, Ordering::Relaxed);
        let cl = token_claims(&tok);
        let mut t = self.inner.tok.lock().unwrap();
        t.token = tok.clone();
        t.exp = cl.exp;
        t.force = false;
        if !cl.tenant.is_empty() {
            t.tenant = cl.tenant;
        }
        Ok(tok)
    }

    async fn current_token(&self) -> Result<String> {
        let (tok, need) = {
            let t = self.inner.tok.lock().unwrap();
            let soon = match (t.exp, self.inner.o.refresh_before) {
                (Some(exp), Some(rb)) => exp.saturating_duration_since(Instant::now()) < rb,
                (Some(exp), None) => exp <= Instant::now(),
                _ => false,
            };
            (t.token.clone(), t.force || tok_empty(&t.token) || soon)
        };
        if need && self.inner.o.token_fn.is_some() {
            return self.refresh().await;
        }
        Ok(tok)
    }

    async fn handshake(&self, token: &str) -> Result<tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>> {
        let mut req = self.inner.ws_url.as_str().into_client_request().map_err(|e| Error::local("bad_request", e.to_string()))?;
        req.headers_mut().insert("Authorization", format!("Bearer {token}").parse().map_err(|_| Error::local("malformed_token", "token is not a header value"))?);
        let cfg = tokio_tungstenite::tungstenite::protocol::WebSocketConfig { max_message_size: Some(8 << 20), max_frame_size: Some(8 << 20), ..Default::default() };
        match tokio::time::timeout(self.inner.o.call_timeout, tokio_tungstenite::connect_async_with_config(req, Some(cfg), false)).await {
            Err(_) => Err(Error::new("connection_lost", "dial timeout")),
            Ok(Ok((ws, _))) => Ok(ws),
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => {
                let body = resp.body().clone().unwrap_or_default();
                match serde_json::from_slice::<Value>(&body).ok().and_then(|v| v.get("error").cloned()) {
                    Some(e) => Err(Error::from_wire(&e)),
                    None => Err(Error::new("connection_lost", format!("handshake: HTTP {}", resp.status()))),
                }
            }
            Ok(Err(e)) => Err(Error::new("connection_lost", format!("dial: {e}"))),
        }
    }

    async fn dial(&self) -> Result<tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>> {
        for attempt in 0..2 {
            let tok = self.current_token().await?;
            match self.handshake(&tok).await {
                Err(e) if e.code == "token_expired" && self.inner.o.token_fn.is_some() && attempt == 0 => {
                    self.inner.tok.lock().unwrap().force = true;
                }
                r => return r,
            }
        }
        Err(Error::new("token_expired", "refreshed token refused"))
    }

    fn retryable(&self, e: &Error, attempt: u32) -> Option<Duration> {
        match e.code.as_str() {
            "rate_limited" => {
                self.inner.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            }
            "unavailable" | "too_many_connections" | "connection_lost" => {}
            _ => return None,
        }
        if let Some(d) = e.retry_after {
            return Some(d);
        }
        let d = self.inner.o.backoff_min * 2u32.saturating_pow(attempt.min(10));
        Some(d.min(self.inner.o.backoff_max) / 2)
    }

    // run keeps the client connected: install, serve, reconnect.
    async fn run(self, first: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>) {
        let mut ws = Some(first);
        let mut failures = 0u32;
        let mut closed_rx = self.inner.closed.subscribe();
        loop {
            if let Some(w) = ws.take() {
                failures = 0;
                let code = self.serve(w).await;
                match code {
                    Some(4001) => {
                        self.inner.stats.closes_4001.fetch_add(1, Ordering::Relaxed);
                        self.inner.tok.lock().unwrap().force = true;
                    }
                    Some(4008) => {
                        self.inner.stats.closes_4008.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(1001) => {
                        self.inner.stats.closes_1001.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
            if self.is_closed() {
                break;
            }
            let d = if failures == 0 {
                Duration::from_nanos(rand::thread_rng().gen_range(0..=self.inner.o.backoff_min.as_nanos() as u64))
            } else {
                sleep_jitter((self.inner.o.backoff_min * 2u32.saturating_pow(failures.min(20))).min(self.inner.o.backoff_max))
            };
            tokio::select! {
                _ = tokio::time::sleep(d) => {}
                _ = closed_rx.changed() => {}
            }
            if self.is_closed() {
                break;
            }
            match self.dial().await {
                Ok(w) => {
                    self.inner.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                    ws = Some(w);
                }
                Err(e) => {
                    failures += 1;
                    let fatal = matches!(e.code.as_str(), "missing_token" | "malformed_token" | "invalid_signature" | "token_not_yet_valid" | "wrong_audience" | "wrong_tenant" | "invalid_claims" | "token_expired");
                    if fatal && self.inner.o.token_fn.is_none() || self.inner.o.reconnect_max > 0 && failures >= self.inner.o.reconnect_max {
                        let _ = self.inner.closed.send(true);
                        break;
                    }
                    if fatal {
                        self.inner.tok.lock().unwrap().force = true;
                    }
                }
            }
        }
        let _ = self.inner.conn_tx.send(None);
        self.inner.subs.lock().unwrap().clear();
    }

    // serve runs one connection until it ends; returns its close code.
    async fn serve(&self, ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>) -> Option<u16> {
        self.inner.stats.connects.fetch_add(1, Ordering::Relaxed);
        let (mut sink, mut stream) = ws.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<WsMessage>();
        let gen = self.inner.gen.fetch_add(1, Ordering::SeqCst) + 1;
        let conn = Arc::new(Conn { gen, out, pending: Mutex::new(Some(HashMap::new())) });
        let writer = tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                let close = matches!(m, WsMessage::Close(_));
                if sink.send(m).await.is_err() || close {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let _ = self.inner.conn_tx.send(Some(conn.clone()));
        // Resubscribe every subscription from its last delivered seq.
        let subs: Vec<Arc<SubState>> = self.inner.subs.lock().unwrap().values().cloned().collect();
        for s in subs {
            let mut p = s.st.lock().unwrap();
            if p.gen != gen {
                p.gen = gen;
                let (c, s2, cn) = (self.clone(), s.clone(), conn.clone());
                tokio::spawn(async move { c.subscribe_on(cn, s2).await });
            }
        }
        let mut closed_rx = self.inner.closed.subscribe();
        let refresh_at = {
            let t = self.inner.tok.lock().unwrap();
            match (self.inner.o.token_fn.is_some(), t.exp, self.inner.o.refresh_before) {
                (true, Some(exp), Some(rb)) => Some(exp.checked_sub(rb).unwrap_or_else(Instant::now)),
                _ => None,
            }
        };
        let refresh = async {
            match refresh_at {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(refresh);
        let mut refreshed = false;
        let mut code = None;
        loop {
            tokio::select! {
                m = stream.next() => match m {
                    Some(Ok(WsMessage::Text(t))) => self.frame(&conn, &t).await,
                    Some(Ok(WsMessage::Close(f))) => { code = f.map(|f| u16::from(f.code)); break; }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break,
                },
                _ = closed_rx.changed() => { if self.is_closed() { let _ = conn.out.send(WsMessage::Close(None)); break; } }
                _ = &mut refresh, if !refreshed => {
                    refreshed = true;
                    let c = self.clone();
                    tokio::spawn(async move {
                        if let Ok(tok) = c.refresh().await {
                            let _ = c.call(json!({"cmd": "auth", "token": tok})).await;
                        }
                    });
                }
            }
        }
        let pending = conn.pending.lock().unwrap().take().unwrap_or_default();
        for (_, (tx, _)) in pending {
            let _ = tx.send(Err(Error::new("connection_lost", "connection ended before the reply")));
        }
        let _ = self.inner.conn_tx.send_if_modified(|c| {
            if c.as_ref().map(|c| c.gen) == Some(gen) {
                *c = None;
                true
            } else {
                false
            }
        });
        drop(conn);
        writer.abort();
        code
    }

    async fn frame(&self, conn: &Arc<Conn>, text: &str) {
        let Ok(v) = serde_json::from_str::<Value>(text) else { return };
        if v.get("event").is_some() {
            self.event(v).await;
            return;
        }
        let Some(id) = v.get("id").and_then(Value::as_u64) else { return };
        let entry = conn.pending.lock().unwrap().as_mut().and_then(|p| p.remove(&id));
        let Some((tx, sub)) = entry else { return };
        if let Some(e) = v.get("error") {
            let _ = tx.send(Err(Error::from_wire(e)));
            return;
        }
        if let Some(s) = sub {
            // Before any event of the subscription: fix its start.
            let mut p = s.st.lock().unwrap();
            if p.last.is_none() {
                p.last = v.get("since").and_then(Value::as_u64);
            }
            p.resync = false;
        }
        let _ = tx.send(Ok(v));
    }

    async fn event(&self, v: Value) {
        let room = v.get("room").and_then(Value::as_str).unwrap_or("").to_string();
        let thread = v.get("thread").and_then(Value::as_u64).unwrap_or(0);
        let Some(s) = self.inner.subs.lock().unwrap().get(&(room.clone(), thread)).cloned() else { return };
        match v.get("event").and_then(Value::as_str) {
            Some("message") => {
                let Ok(m) = serde_json::from_value::<Message>(v) else { return };
                let ev = {
                    let mut p = s.st.lock().unwrap();
                    if p.resync || p.last.is_some_and(|l| m.seq <= l) {
                        return;
                    }
                    let prev = if p.last == Some(m.seq.wrapping_sub(1)) { p.last_hash.clone() } else { String::new() };
                    p.last = Some(m.seq);
                    p.last_hash = m.hash.clone();
                    if self.inner.o.verify_hashes {
                        match verify_message(&self.tenant(), &prev, &m) {
                            Ok(()) => Event::Message(m),
                            Err(error) => Event::HashMismatch { message: m, error },
                        }
                    } else {
                        Event::Message(m)
                    }
                };
                let _ = s.tx.send(ev).await;
            }
            Some("truncated") => {
                let from = v.get("from").and_then(Value::as_u64).unwrap_or(0);
                let to = v.get("to").and_then(Value::as_u64).unwrap_or(0);
                {
                    let mut p = s.st.lock().unwrap();
                    if p.resync || p.last.is_some_and(|l| to <= l) {
                        return;
                    }
                    if p.checked != from {
                        // The first time: renew the subscription from the
                        // last delivered seq, which reads the log again (an
                        // edge can declare a range gone that the cluster
                        // still holds, after a failover). Only a truncation
                        // that comes back is reported.
                        p.checked = from;
                        p.resync = true;
                        if let Some(cn) = self.inner.conn_rx.borrow().clone() {
                            let (c, s2) = (self.clone(), s.clone());
                            tokio::spawn(async move {
                                match c.send_on(&cn, json!({"cmd": "unsubscribe", "room": s2.room, "thread": s2.thread}), None).await {
                                    Ok(_) => c.subscribe_on(cn, s2).await,
                                    Err(e) if e.code == "not_subscribed" => c.subscribe_on(cn, s2).await,
                                    Err(_) => {}
                                }
                            });
                        }
                        return;
                    }
                    p.last = Some(to);
                    p.last_hash.clear();
                }
                let _ = s.tx.send(Event::Truncated { room, thread, from, to }).await;
            }
            Some("unsubscribed") => {
                let error = v.get("error").map(Error::from_wire).unwrap_or_else(|| Error::new("unavailable", "unsubscribed"));
                if error.code == "unavailable" {
                    if let Some(cn) = self.inner.conn_rx.borrow().clone() {
                        let (c, s2) = (self.clone(), s.clone());
                        tokio::spawn(async move {
                            tokio::time::sleep(c.inner.o.backoff_min).await;
                            c.subscribe_on(cn, s2).await
                        });
                    }
                    return;
                }
                self.inner.subs.lock().unwrap().remove(&(room.clone(), thread));
                let _ = s.tx.send(Event::Unsubscribed { room, thread, error }).await;
            }
            _ => {}
        }
    }

    async fn conn(&self) -> Result<Arc<Conn>> {
        let mut rx = self.inner.conn_rx.clone();
        let mut closed = self.inner.closed.subscribe();
        loop {
            if self.is_closed() {
                return Err(Error::new("closed", "client closed"));
            }
            if let Some(c) = rx.borrow_and_update().clone() {
                if !c.closed() {
                    return Ok(c);
                }
            }
            tokio::select! {
                r = rx.changed() => if r.is_err() { return Err(Error::new("closed", "client closed")) },
                _ = closed.changed() => {}
            }
        }
    }

    async fn send_on(&self, conn: &Arc<Conn>, mut cmd: Value, sub: Option<Arc<SubState>>) -> Result<Value> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        cmd["id"] = json!(id);
        self.send_raw(conn, id, cmd.to_string(), sub).await
    }

    async fn send_raw(&self, conn: &Arc<Conn>, id: u64, text: String, sub: Option<Arc<SubState>>) -> Result<Value> {
        let (tx, rx) = oneshot::channel();
        {
            let mut p = conn.pending.lock().unwrap();
            let Some(map) = p.as_mut() else { return Err(Error::new("connection_lost", "connection closed")) };
            map.insert(id, (tx, sub));
        }
        if conn.out.send(WsMessage::Text(text)).is_err() {
            return Err(Error::new("connection_lost", "connection closed"));
        }
        match tokio::time::timeout(self.inner.o.call_timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(Error::new("connection_lost", "connection ended before the reply")),
            Err(_) => {
                if let Some(m) = conn.pending.lock().unwrap().as_mut() {
                    m.remove(&id);
                }
                Err(Error::new("connection_lost", "no reply in time"))
            }
        }
    }

    /// Sends one command (a JSON object with `cmd`) once, without retries.
    pub async fn call(&self, cmd: Value) -> Result<Value> {
        let conn = self.conn().await?;
        self.send_on(&conn, cmd, None).await
    }

    // call with retries of temporary refusals, for commands safe to repeat.
    async fn exec<T: for<'de> Deserialize<'de>>(&self, cmd: Value) -> Result<T> {
        let deadline = Instant::now() + self.inner.o.post_timeout;
        let mut attempt = 0;
        loop {
            match self.call(cmd.clone()).await {
                Ok(v) => return serde_json::from_value(v).map_err(|e| Error::new("internal", format!("reply: {e}"))),
                Err(e) => {
                    let Some(wait) = self.retryable(&e, attempt) else { return Err(e) };
                    if Instant::now() + wait > deadline || self.is_closed() {
                        return Err(e);
                    }
                    self.inner.stats.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
            }
        }
    }

    pub async fn ping(&self) -> Result<()> {
        self.exec::<Value>(json!({"cmd": "ping"})).await.map(|_| ())
    }
    pub async fn whoami(&self) -> Result<Value> {
        self.exec(json!({"cmd": "whoami"})).await
    }
    /// Creates a room (`private`, `audit`, `retention` as in the protocol).
    pub async fn create_room(&self, room: &str, private: bool) -> Result<Value> {
        check_room(room)?;
        let mut c = json!({"cmd": "create_room", "room": room});
        if private {
            c["private"] = json!(true);
        }
        self.exec(c).await
    }
    pub async fn join(&self, room: &str) -> Result<Value> {
        check_room(room)?;
        self.exec(json!({"cmd": "join", "room": room})).await
    }
    pub async fn leave(&self, room: &str) -> Result<Value> {
        check_room(room)?;
        self.exec(json!({"cmd": "leave", "room": room})).await
    }
    pub async fn invite(&self, room: &str, user: &str) -> Result<Value> {
        check_room(room)?;
        check_user(user)?;
        self.exec(json!({"cmd": "invite", "room": room, "user": user})).await
    }
    /// Opens (creating the first time) the DM with `peer`: `{room, peer, created}`.
    pub async fn open_dm(&self, peer: &str) -> Result<Value> {
        check_user(peer)?;
        self.exec(json!({"cmd": "open_dm", "peer": peer})).await
    }
    pub async fn snapshot(&self, room: &str, thread: u64, limit: u32) -> Result<Value> {
        check_room(room)?;
        if limit > READ_LIMIT_MAX {
            return Err(Error::local("invalid_limit", format!("limit {limit} above {READ_LIMIT_MAX}")));
        }
        let mut c = json!({"cmd": "snapshot", "room": room, "thread": thread});
        if limit > 0 {
            c["limit"] = json!(limit);
        }
        self.exec(c).await
    }

    /// One page: `since` (after it) or `before` (scroll-back); neither: newest.
    pub async fn history_page(&self, room: &str, thread: u64, since: Option<u64>, before: Option<u64>, limit: u32) -> Result<Log> {
        check_room(room)?;
        if limit > READ_LIMIT_MAX {
            return Err(Error::local("invalid_limit", format!("limit {limit} above {READ_LIMIT_MAX}")));
        }
        let mut c = json!({"cmd": "history", "room": room, "thread": thread});
        match (since, before) {
            (Some(_), Some(_)) => return Err(Error::local("invalid_range", "at most one of since, before")),
            (Some(s), None) => c["since"] = json!(s),
            (None, Some(b)) if b < 1 => return Err(Error::local("invalid_seq", "before must be >= 1")),
            (None, Some(b)) => c["before"] = json!(b),
            _ => {}
        }
        if limit > 0 {
            c["limit"] = json!(limit);
        }
        self.exec(c).await
    }

    /// The whole retained log, page by page, ascending (or descending with
    /// `backward`), with `Truncated` items for seqs no longer retained.
    pub async fn history(&self, room: &str, thread: u64, backward: bool, page_size: u32) -> Result<Vec<HistoryItem>> {
        let size = page_size.clamp(1, READ_LIMIT_MAX);
        let mut out = Vec::new();
        if !backward {
            let mut next = 1u64;
            loop {
                let l = self.history_page(room, thread, Some(next - 1), None, size).await?;
                if let Some(m) = l.messages.first() {
                    if m.seq > next {
                        out.push(HistoryItem::Truncated { from: next, to: m.seq - 1 });
                    }
                }
                for m in &l.messages {
                    next = m.seq + 1;
                }
                let n = l.messages.len();
                out.extend(l.messages.into_iter().map(HistoryItem::Message));
                if !l.more || n == 0 {
                    return Ok(out);
                }
            }
        }
        let mut before: Option<u64> = None;
        loop {
            let l = self.history_page(room, thread, None, before, size).await?;
            // An edge asked for the messages before B when B-limit is below
            // the oldest retained seq answers from the oldest on, past B.
            let mut msgs: Vec<Message> = l.messages.into_iter().filter(|m| before.map_or(true, |b| m.seq < b)).collect();
            msgs.reverse();
            let Some(low) = msgs.last().map(|m| m.seq) else {
                if let Some(b) = before {
                    if l.first_seq > 1 && b <= l.first_seq {
                        out.push(HistoryItem::Truncated { from: 1, to: b - 1 });
                    }
                }
                return Ok(out);
            };
            out.extend(msgs.into_iter().map(HistoryItem::Message));
            if low <= 1 {
                return Ok(out);
            }
            if !l.more || low <= l.first_seq {
                if l.first_seq > 1 && low <= l.first_seq {
                    out.push(HistoryItem::Truncated { from: 1, to: low - 1 });
                }
                return Ok(out);
            }
            before = Some(low);
        }
    }

    /// Follows a log; `since` delivers every message after it first
    /// (resume), `None` starts at the current head.
    pub async fn subscribe(&self, room: &str, thread: u64, since: Option<u64>) -> Result<Subscription> {
        check_room(room)?;
        let (tx, rx) = mpsc::channel(self.inner.o.event_buffer.max(1));
        let (ftx, frx) = oneshot::channel();
        let s = Arc::new(SubState {
            room: room.to_string(),
            thread,
            tx,
            st: Mutex::new(SubPos { last: since, resync: false, checked: 0, last_hash: String::new(), gen: 0, first: Some(ftx) }),
        });
        {
            let mut subs = self.inner.subs.lock().unwrap();
            if subs.contains_key(&(room.to_string(), thread)) {
                return Err(Error::local("already_subscribed", format!("already subscribed to {room} thread {thread}")));
            }
            subs.insert((room.to_string(), thread), s.clone());
        }
        let cur = self.inner.conn_rx.borrow().clone();
        if let Some(cn) = cur {
            let go = {
                let mut p = s.st.lock().unwrap();
                if p.gen != cn.gen {
                    p.gen = cn.gen;
                    true
                } else {
                    false
                }
            };
            if go {
                let (c, s2) = (self.clone(), s.clone());
                tokio::spawn(async move { c.subscribe_on(cn, s2).await });
            }
        }
        match frx.await {
            Ok(Ok(())) => Ok(Subscription { rx, state: s, client: self.clone() }),
            Ok(Err(e)) => {
                self.inner.subs.lock().unwrap().remove(&(room.to_string(), thread));
                Err(e)
            }
            Err(_) => Err(Error::new("closed", "client closed")),
        }
    }

    async fn subscribe_on(&self, conn: Arc<Conn>, s: Arc<SubState>) {
        for attempt in 0..20u32 {
            let registered = self.inner.subs.lock().unwrap().get(&(s.room.clone(), s.thread)).is_some_and(|x| Arc::ptr_eq(x, &s));
            if !registered {
                return;
            }
            let mut cmd = json!({"cmd": "subscribe", "room": s.room});
            if s.thread != 0 {
                cmd["thread"] = json!(s.thread);
            }
            if let Some(l) = s.st.lock().unwrap().last {
                cmd["since"] = json!(l);
            }
            let r = self.send_on(&conn, cmd, Some(s.clone())).await;
            let err = match r {
                Ok(_) => None,
                Err(e) if e.code == "already_subscribed" => None,
                Err(e) => Some(e),
            };
            let Some(e) = err else {
                if let Some(f) = s.st.lock().unwrap().first.take() {
                    let _ = f.send(Ok(()));
                }
                return;
            };
            if e.code == "connection_lost" || self.is_closed() {
                return;
            }
            if let Some(wait) = self.retryable(&e, attempt) {
                tokio::time::sleep(wait).await;
                continue;
            }
            let first = s.st.lock().unwrap().first.take();
            if let Some(f) = first {
                let _ = f.send(Err(e));
                return;
            }
            self.inner.subs.lock().unwrap().remove(&(s.room.clone(), s.thread));
            let _ = s.tx.send(Event::Unsubscribed { room: s.room.clone(), thread: s.thread, error: e }).await;
            return;
        }
    }

    /// Posts `body` to `room` (into `thread` when not 0) with `key` (a UUID
    /// when `None`, kept across retries); retried on unknown outcomes,
    /// `unavailable` and `rate_limited` until `post_timeout`.
    pub async fn post(&self, room: &str, body: &str, key: Option<&str>, thread: u64) -> Result<PostResult> {
        check_room(room)?;
        if body.is_empty() {
            return Err(Error::local("body_empty", "empty body"));
        }
        if body.len() > self.inner.o.body_max {
            return Err(Error::local("body_too_large", format!("body of {} bytes above the limit of {}", body.len(), self.inner.o.body_max)));
        }
        let key = match key {
            Some(k) if !valid_id(k) => return Err(Error::local("invalid_idempotency_key", format!("key {k:?} is not 1-64 bytes of [A-Za-z0-9._-]"))),
            Some(k) => k.to_string(),
            None => new_key(),
        };
        if self.is_closed() {
            return Err(Error::new("closed", "client closed"));
        }
        let mut obj = json!({"room": room, "body": body, "key": key});
        if thread != 0 {
            obj["thread"] = json!(thread);
        }
        let (tx, rx) = oneshot::channel();
        let req = PostReq {
            n: self.inner.post_seq.fetch_add(1, Ordering::Relaxed),
            room: room.to_string(),
            key,
            enc: obj.to_string(),
            deadline: Instant::now() + self.inner.o.post_timeout,
            attempts: 0,
            res: tx,
        };
        self.inner.posts.send(req).map_err(|_| Error::new("closed", "client closed"))?;
        rx.await.unwrap_or_else(|_| Err(Error::new("closed", "client closed")))
    }

    // batcher sends queued posts: alone when nothing else waits, else as
    // post_batch frames of up to batch_max posts, at most
    // post_frames_in_flight frames outstanding.
    async fn batcher(self, mut posts: mpsc::UnboundedReceiver<PostReq>) {
        let mut queue: BTreeMap<u64, PostReq> = BTreeMap::new();
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(Vec<PostReq>, Result<Vec<Result<PostResult>>>)>();
        let mut inflight = 0usize;
        let mut pause_until = Instant::now();
        let mut batch_cap = self.inner.o.batch_max.clamp(1, POST_BATCH_MAX);
        let mut closed = self.inner.closed.subscribe();
        let mut conn_rx = self.inner.conn_rx.clone();
        loop {
            let now = Instant::now();
            let cur = conn_rx.borrow_and_update().clone();
            if now >= pause_until {
                while inflight < self.inner.o.post_frames_in_flight && !queue.is_empty() {
                    let Some(conn) = cur.clone() else { break };
                    if conn.closed() {
                        break;
                    }
                    let mut batch = Vec::new();
                    let mut size = 64;
                    while batch.len() < batch_cap {
                        let Some((_, p)) = queue.first_key_value() else { break };
                        if !batch.is_empty() && size + p.enc.len() + 1 > FRAME_MAX - 4096 {
                            break;
                        }
                        size += p.enc.len() + 1;
                        batch.push(queue.pop_first().unwrap().1);
                    }
                    inflight += 1;
                    let (c, tx) = (self.clone(), done_tx.clone());
                    tokio::spawn(async move {
                        let r = c.send_posts(&conn, &mut batch).await;
                        let _ = tx.send((batch, r));
                    });
                }
            }
            let wake = if !queue.is_empty() && now < pause_until { pause_until } else { now + Duration::from_secs(3600) };
            tokio::select! {
                p = posts.recv() => match p {
                    Some(p) => { queue.insert(p.n, p); }
                    None => return,
                },
                Some((batch, r)) = done_rx.recv() => {
                    inflight -= 1;
                    match &r {
                        Err(e) if e.code == "rate_limited" => batch_cap = (batch.len() / 2).max(1),
                        Ok(_) => batch_cap = (batch_cap * 2).min(self.inner.o.batch_max.clamp(1, POST_BATCH_MAX)),
                        _ => {}
                    }
                    let results: Vec<Result<PostResult>> = match r {
                        Ok(v) => v,
                        Err(e) => batch.iter().map(|_| Err(e.clone())).collect(),
                    };
                    for (p, r) in batch.into_iter().zip(results) {
                        match r {
                            Ok(mut res) => { res.attempts = p.attempts; let _ = p.res.send(Ok(res)); }
                            Err(e) => {
                                let Some(wait) = self.retryable(&e, p.attempts) else { let _ = p.res.send(Err(e)); continue };
                                if self.is_closed() { let _ = p.res.send(Err(Error::new("closed", "client closed"))); continue; }
                                if Instant::now() + wait > p.deadline {
                                    let _ = p.res.send(Err(Error::new("deadline_exceeded", format!("post {} to {}: outcome unknown after {} attempts; last: {e}", p.key, p.room, p.attempts))));
                                    continue;
                                }
                                self.inner.stats.retries.fetch_add(1, Ordering::Relaxed);
                                if e.code != "connection_lost" { pause_until = pause_until.max(Instant::now() + wait); }
                                queue.insert(p.n, p);
                            }
                        }
                    }
                },
                _ = tokio::time::sleep_until(wake.into()) => {},
                _ = conn_rx.changed() => {},
                _ = closed.changed() => {
                    if self.is_closed() {
                        for (_, p) in std::mem::take(&mut queue) { let _ = p.res.send(Err(Error::new("closed", "client closed"))); }
                    }
                },
                _ = tokio::time::sleep(Duration::from_millis(20)), if !queue.is_empty() => {},
            }
        }
    }

    async fn send_posts(&self, conn: &Arc<Conn>, posts: &mut [PostReq]) -> Result<Vec<Result<PostResult>>> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let text = if posts.len() == 1 {
            self.inner.stats.post_frames.fetch_add(1, Ordering::Relaxed);
            format!("{{\"id\":{id},\"cmd\":\"post\",{}", &posts[0].enc[1..])
        } else {
            self.inner.stats.batch_frames.fetch_add(1, Ordering::Relaxed);
            self.inner.stats.batch_posts.fetch_add(posts.len() as i64, Ordering::Relaxed);
            let inner: Vec<&str> = posts.iter().map(|p| p.enc.as_str()).collect();
            format!("{{\"id\":{id},\"cmd\":\"post_batch\",\"posts\":[{}]}}", inner.join(","))
        };
        if conn.closed() {
            return Err(Error::new("connection_lost", "connection closed"));
        }
        for p in posts.iter_mut() {
            p.attempts += 1;
        }
        let v = self.send_raw(conn, id, text, None).await?;
        if posts.len() == 1 {
            return Ok(vec![serde_json::from_value(v).map_err(|e| Error::new("internal", format!("post reply: {e}")))]);
        }
        let results = v.get("results").and_then(Value::as_array).cloned().unwrap_or_default();
        if results.len() != posts.len() {
            return Err(Error::new("internal", format!("post_batch reply of {} results for {} posts", results.len(), posts.len())));
        }
        Ok(results
            .into_iter()
            .map(|r| match r.get("error") {
                Some(e) => Err(Error::from_wire(e)),
                None => serde_json::from_value(r).map_err(|e| Error::new("internal", format!("post_batch result: {e}"))),
            })
            .collect())
    }
}

fn tok_empty(t: &str) -> bool {
    t.is_empty()
}
