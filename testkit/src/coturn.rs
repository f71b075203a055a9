//! A real TURN server (coturn's `turnserver`, Debian package `coturn`) on loopback, for the
//! relay-only call test and benchmark. It checks credentials with the REST-API shared secret
//! (`use-auth-secret`), the scheme `tidings serve` hands credentials out in.

use std::{
    net::UdpSocket,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context;

/// A running `turnserver`, killed when dropped.
#[derive(Debug)]
pub struct Coturn {
    child: Child,
    /// Its UDP port on 127.0.0.1.
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Coturn {
    /// Starts coturn on a free loopback port, accepting credentials made with `secret`.
    /// Loopback peers are allowed (both relay addresses are 127.0.0.1 here; never do this
    /// in production).
    pub fn start(secret: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
        // A hundred relay ports (two per call, held until released), chosen by the
        // listening port so that parallel servers rarely collide.
        let relay_min = 50_000 + (port % 150) * 100;
        let child = Command::new("turnserver")
            .args(["-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1"])
            .arg(format!("--listening-port={port}"))
            .arg(format!("--min-port={relay_min}"))
            .arg(format!("--max-port={}", relay_min + 99))
            .args(["--use-auth-secret", &format!("--static-auth-secret={secret}")])
            .args(["--realm=tidings.test", "--no-tls", "--no-dtls", "--fingerprint"])
            .args(["--allow-loopback-peers", "--no-cli", "--log-file=stdout", "--simple-log"])
            .arg(format!("--pidfile={}", dir.path().join("turn.pid").display()))
            .arg(format!("--userdb={}", dir.path().join("turn.db").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("coturn's turnserver is not installed (cargo xtask test installs it)")?;
        let mut coturn = Self { child, port, _dir: dir };
        if !answers_stun(port) {
            let _ = coturn.child.kill();
            anyhow::bail!("coturn did not start");
        }
        Ok(coturn)
    }

    /// Its TURN URL.
    pub fn url(&self) -> String {
        format!("turn:127.0.0.1:{}?transport=udp", self.port)
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether a STUN Binding request to 127.0.0.1:`port` is answered within 10 s (the server
/// is up and listening).
fn answers_stun(port: u16) -> bool {
    let Ok(socket) = UdpSocket::bind("127.0.0.1:0") else { return false };
    let _ = socket.set_read_timeout(Some(Duration::from_millis(100)));
    // Binding request: type 0x0001, length 0, the magic cookie, a transaction id.
    let mut request = [0u8; 20];
    request[1] = 0x01;
    request[4..8].copy_from_slice(&0x2112_A442u32.to_be_bytes());
    request[8..].copy_from_slice(b"tidings-test");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut answer = [0u8; 512];
    while Instant::now() < deadline {
        let _ = socket.send_to(&request, ("127.0.0.1", port));
        if socket.recv(&mut answer).is_ok_and(|n| n >= 20) {
            return true;
        }
    }
    false
}
