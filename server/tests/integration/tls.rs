//! TLS on the real listener: a test CA (rcgen), the server on a loopback port with its
//! certificate files, and outside clients — curl, openssl s_client, and a websocket over
//! rustls — talking to it. Also: slow-loris headers are cut, certificates reload without
//! dropping a connection, a self-signed certificate survives a restart.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tidings_proto::{codec, ClientFrame, Reply, Request, ServerFrame};
use tidings_server::tls::{fingerprint, TlsSource};
use tidings_testkit::{text, CertFiles, TestCa, TestServer};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tokio_tungstenite::tungstenite::Message;

/// A server with `cert` on TLS.
async fn tls_server(cert: &CertFiles) -> TestServer {
    let source = TlsSource::Files { cert: cert.cert.clone(), key: cert.key.clone() };
    TestServer::start_with(|c| c.tls = Some(source)).await.unwrap()
}

/// A TLS stream to the server, as "localhost".
async fn tls_to(server: &TestServer, ca: &TestCa) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(ca.client_config().unwrap()).connect(name, tcp).await.unwrap()
}

/// The fingerprint of the certificate the server presents to a new connection.
async fn presented(server: &TestServer, ca: &TestCa) -> String {
    let tls = tls_to(server, ca).await;
    let (_, session) = tls.get_ref();
    fingerprint(&session.peer_certificates().unwrap()[0])
}

fn run(program: &str, args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} (installed by cargo xtask test): {e}"));
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn curl_and_openssl_talk_to_the_tls_server_with_tls_1_2_or_newer_only() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Tidings test CA").unwrap();
    let ca_file = ca.write(dir.path(), "ca.pem").unwrap();
    let cert = ca.leaf(dir.path(), "server", &["localhost", "127.0.0.1"], (-1, 30)).unwrap();
    let server = tls_server(&cert).await;
    let port = server.addr.port();
    let url = format!("https://localhost:{port}/healthz");
    let ca_arg = ca_file.to_str().unwrap();
    // curl in a blocking thread: the server runs on this test's runtime.
    let (ok, untrusted, plain) = tokio::task::spawn_blocking({
        let (url, ca_arg) = (url.clone(), ca_arg.to_owned());
        move || {
            let resolve = format!("localhost:{port}:127.0.0.1");
            let ok = run("curl", &["-sS", "--resolve", &resolve, "--cacert", &ca_arg, &url], "");
            let untrusted = run("curl", &["-sS", "--resolve", &resolve, &url], "");
            let plain = run("curl", &["-sS", &format!("http://127.0.0.1:{port}/healthz")], "");
            (ok, untrusted, plain)
        }
    })
    .await
    .unwrap();
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "ok\n");
    assert!(!untrusted.status.success(), "curl trusted a certificate of an unknown CA");
    // Plain HTTP to a TLS port gets nothing a client could take for an answer.
    assert_ne!(String::from_utf8_lossy(&plain.stdout), "ok\n");

    let connect = format!("127.0.0.1:{port}");
    let versions = tokio::task::spawn_blocking(move || {
        ["-tls1", "-tls1_1", "-tls1_2", "-tls1_3"].map(|v| {
            // -brief: one "Protocol version: …" line (stderr) once a handshake completes;
            // stdin at its end makes s_client leave after the handshake.
            let out = run(
                "openssl",
                &["s_client", "-brief", "-connect", &connect, "-servername", "localhost", v],
                "",
            );
            let shown = String::from_utf8_lossy(&out.stderr).to_string()
                + &String::from_utf8_lossy(&out.stdout);
            shown.lines().any(|l| {
                l.starts_with("Protocol version:")
                    && (l.contains("TLSv1.2") || l.contains("TLSv1.3"))
            })
        })
    })
    .await
    .unwrap();
    assert_eq!(versions, [false, false, true, true], "TLS 1.0, 1.1 refused; 1.2, 1.3 spoken");
}

#[tokio::test]
async fn the_protocol_runs_over_a_websocket_on_tls_and_survives_a_certificate_reload() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Tidings test CA").unwrap();
    let first = ca.leaf(dir.path(), "first", &["localhost"], (-1, 30)).unwrap();
    let server = tls_server(&first).await;
    let before = presented(&server, &ca).await;

    // A websocket over TLS, open across the reload.
    let stream = tls_to(&server, &ca).await;
    let url = format!("wss://localhost:{}/v1/ws", server.addr.port());
    let (mut ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
    let ping = |nonce| {
        let frame = ClientFrame { id: nonce as u32, request: Request::Ping { nonce } };
        Message::Binary(codec::encode_client(&frame).unwrap().into())
    };
    let v = tidings_proto::PROTOCOL_VERSION;
    let hello = ClientFrame {
        id: 0,
        request: Request::Hello { min_version: v, max_version: v, client: text("tls test") },
    };
    ws.send(Message::Binary(codec::encode_client(&hello).unwrap().into())).await.unwrap();
    ws.next().await.unwrap().unwrap();

    // A renewed certificate, written over the old files, then reloaded (SIGHUP in the CLI).
    let renewed = ca.leaf(dir.path(), "renewed", &["localhost"], (-1, 90)).unwrap();
    std::fs::copy(&renewed.cert, &first.cert).unwrap();
    std::fs::copy(&renewed.key, &first.key).unwrap();
    server.tls().unwrap().reload().unwrap();
    let after = presented(&server, &ca).await;
    assert_ne!(before, after, "new handshakes get the renewed certificate");
    assert_eq!(after, server.tls().unwrap().fingerprint());

    // The connection made before the reload still works.
    ws.send(ping(41)).await.unwrap();
    let Message::Binary(bytes) = ws.next().await.unwrap().unwrap() else { panic!() };
    let frame = codec::decode_server(&bytes).unwrap();
    assert!(
        matches!(frame, ServerFrame::Reply { result: Ok(Reply::Pong { nonce: 41 }), .. }),
        "{frame:?}"
    );

    // A broken file does not take TLS down: the reload fails and the old key stays.
    std::fs::write(&first.key, "not a key").unwrap();
    assert!(server.tls().unwrap().reload().is_err());
    assert_eq!(presented(&server, &ca).await, after);
}

#[tokio::test]
async fn a_self_signed_certificate_is_kept_across_restarts_in_a_private_data_dir() {
    let data = tempfile::tempdir().unwrap();
    let start =
        || TestServer::start_in(data.path().to_owned(), |c| c.tls = Some(TlsSource::SelfSigned));
    let mut first = start().await.unwrap();
    let pin = first.tls().unwrap().fingerprint();
    assert!(pin.starts_with("sha256:") && pin.len() == 7 + 64, "{pin}");
    first.stop().await.unwrap();
    let second = start().await.unwrap();
    assert_eq!(second.tls().unwrap().fingerprint(), pin, "clients that pinned it still connect");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(data.path()), 0o700);
        assert_eq!(mode(&data.path().join("tidings.sqlite")), 0o600);
        assert_eq!(mode(&data.path().join("tls/key.pem")), 0o600);
    }
}

#[tokio::test]
async fn a_client_that_trickles_its_request_headers_is_cut_off() {
    let server =
        TestServer::start_with(|c| c.header_timeout = Duration::from_millis(500)).await.unwrap();
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    // One header line per 200 ms, never the blank line that ends them.
    let cut = tokio::time::timeout(Duration::from_secs(5), async {
        for i in 0.. {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if tcp.write_all(format!("X-Slow-{i}: y\r\n").as_bytes()).await.is_err() {
                return;
            }
            let mut buf = [0u8; 256];
            match tokio::time::timeout(Duration::from_millis(1), tcp.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                // hyper answers 408 before it closes.
                Ok(Ok(_)) => return,
                Err(_) => continue,
            }
        }
    })
    .await;
    assert!(cut.is_ok(), "a slow-loris header kept its connection for 5 s");
    // Someone quick still gets an answer.
    let mut quick = TcpStream::connect(server.addr).await.unwrap();
    quick
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    quick.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn python_websockets_over_ssl_speaks_the_protocol_with_the_tls_server() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Tidings test CA").unwrap();
    let ca_file = ca.write(dir.path(), "ca.pem").unwrap();
    let cert = ca.leaf(dir.path(), "server", &["localhost"], (-1, 30)).unwrap();
    let server = tls_server(&cert).await;
    let v = tidings_proto::PROTOCOL_VERSION;
    let hello = ClientFrame {
        id: 9,
        request: Request::Hello { min_version: v, max_version: v, client: text("python") },
    };
    let hello = hex::encode(codec::encode_client(&hello).unwrap());
    // An independent client: Python's ssl module verifying against the CA, and the
    // websockets library (installed by cargo xtask test).
    let script = r#"
import ssl, sys
from websockets.sync.client import connect
url, ca, frame = sys.argv[1:4]
context = ssl.create_default_context(cafile=ca)
with connect(url, ssl=context) as ws:
    ws.send(bytes.fromhex(frame))
    print(ws.recv(timeout=10).hex())
"#;
    let url = format!("wss://localhost:{}/v1/ws", server.addr.port());
    let ca_arg = ca_file.to_str().unwrap().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        run("python3", &["-c", script, &url, &ca_arg, &hello], "")
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reply = hex::decode(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    let frame = codec::decode_server(&reply).unwrap();
    assert!(
        matches!(frame, ServerFrame::Reply { id: 9, result: Ok(Reply::Welcome { .. }) }),
        "{frame:?}"
    );
}
