//! The Rust SDK against a scripted edge (a WebSocket server in the test):
//! close 4008 and 1001, then resume from the last delivered seq.

mod scripted_edge;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_codes_resume() {
    scripted_edge::close_codes_resume().await;
}
