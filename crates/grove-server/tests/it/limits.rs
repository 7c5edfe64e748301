//! The HTTP server's own limits: a client that stalls while sending its request is
//! disconnected after the read timeout, and connections past the bound wait until one
//! closes.

use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::support::TestServer;

/// Whether the server has closed `stream` (end of stream, or reset), without waiting.
fn closed_by_server(stream: &tokio::net::TcpStream) -> bool {
    let mut buf = [0u8; 512];
    loop {
        match stream.try_read(&mut buf) {
            Ok(0) => return true,
            // An answer before the close (hyper may send 408): read on.
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

/// Waits (at most 30 s, far above the 300 ms timeout) until the server closes `stream`.
async fn wait_closed(stream: &tokio::net::TcpStream) {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
    while !closed_by_server(stream) {
        assert!(
            tokio::time::Instant::now() < give_up,
            "the server kept a stalled connection open"
        );
        let _ = tokio::time::timeout(Duration::from_millis(50), stream.readable()).await;
    }
}

#[tokio::test]
async fn stalled_clients_are_disconnected_and_connections_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::spawn(dir.path(), |c| {
        c.http_read_timeout_ms = 300;
        c.max_connections = 1;
    })
    .await;
    let addr = server.base.trim_start_matches("http://").to_string();

    // Half a request, then nothing: the server hangs up.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /status/health HTTP/1.1\r\nHost: grove\r\n")
        .await
        .unwrap();
    wait_closed(&slow).await;

    // A body that stalls: the request fails and the connection goes.
    let mut stalled_body = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stalled_body
        .write_all(
            b"POST /druid/v2/sql HTTP/1.1\r\nHost: grove\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"query\":",
        )
        .await
        .unwrap();
    wait_closed(&stalled_body).await;

    drop((slow, stalled_body));

    // One place: a silent connection holds it, so the next request is answered only
    // once the server has dropped the silent one.
    let holder = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let answer = client
        .get(format!("{}/status/health", server.base))
        .send()
        .await
        .unwrap();
    assert!(
        closed_by_server(&holder),
        "the second connection was served while the first held the only place"
    );
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "true");
    // That client's connection now idles, kept alive; another client is still served.
    let other = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let answer = other
        .get(format!("{}/status/health", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    drop(client);
    server.stop().await;
}
