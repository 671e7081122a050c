//! A scripted edge (a WebSocket server in the test) for the Rust SDK:
//! close 4008 and 1001, then resume from the last delivered seq. Used by
//! tests/scripted.rs and by the conformance runner's
//! slow_consumer_4008_resume.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tigerchat::{Client, Event, Options};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as Ws;

fn msg(seq: u64) -> Value {
    json!({"event": "message", "room": "r", "thread": 0, "seq": seq, "hash": "0".repeat(64), "prev_hash": "0".repeat(64),
        "author": "a", "time": "2026-01-01T00:00:00Z", "time_ns": "1", "body": format!("m{seq}")})
}

/// Plays the script (since asked, seqs sent, close code) and checks that
/// the application gets 1..6 once each, in order, and that the client
/// resubscribed from 3 and then from 5.
pub async fn close_codes_resume() {
    let ln = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", ln.local_addr().unwrap());
    // (since the client must ask for, seqs to send, close code)
    let script: Vec<(u64, Vec<u64>, Option<u16>)> = vec![(0, vec![1, 2, 3], Some(4008)), (3, vec![3, 4, 5], Some(1001)), (5, vec![6], None)];
    let server = tokio::spawn(async move {
        let mut sinces = Vec::new();
        for (want, seqs, code) in script {
            let (tcp, _) = ln.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
            let cmd: Value = loop {
                match ws.next().await {
                    Some(Ok(Ws::Text(t))) => break serde_json::from_str(&t).unwrap(),
                    Some(Ok(_)) => continue,
                    other => panic!("client went away: {other:?}"),
                }
            };
            assert_eq!(cmd["cmd"], "subscribe");
            sinces.push(cmd["since"].as_u64().unwrap());
            assert_eq!(cmd["since"].as_u64(), Some(want));
            ws.send(Ws::Text(json!({"id": cmd["id"], "ok": true, "room": "r", "thread": 0, "since": want, "head_seq": 6}).to_string())).await.unwrap();
            for s in seqs {
                ws.send(Ws::Text(msg(s).to_string())).await.unwrap();
            }
            match code {
                Some(c) => {
                    ws.send(Ws::Close(Some(CloseFrame { code: CloseCode::from(c), reason: "scripted".into() }))).await.unwrap();
                    while let Some(Ok(_)) = ws.next().await {}
                }
                None => while let Some(Ok(_)) = ws.next().await {},
            }
        }
        sinces
    });
    let mut o = Options::new(url).token("a.b.c");
    o.backoff_min = Duration::from_millis(10);
    o.backoff_max = Duration::from_millis(50);
    let c = Client::connect(o).await.unwrap();
    let mut sub = c.subscribe("r", 0, Some(0)).await.unwrap();
    let mut got = Vec::new();
    while got.len() < 6 {
        match tokio::time::timeout(Duration::from_secs(20), sub.next()).await {
            Ok(Some(Event::Message(m))) => got.push(m.seq),
            other => panic!("after {got:?}: {other:?}"),
        }
    }
    assert_eq!(got, vec![1, 2, 3, 4, 5, 6]);
    use std::sync::atomic::Ordering::Relaxed;
    let st = c.stats();
    assert_eq!((st.closes_4008.load(Relaxed), st.closes_1001.load(Relaxed), st.reconnects.load(Relaxed)), (1, 1, 2));
    c.close();
    assert_eq!(server.await.unwrap(), vec![0, 3, 5]);
}
