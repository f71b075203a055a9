//! The `tidings` binary over TLS, as people deploy it: `tidings serve` with a CA-signed
//! certificate (a test CA trusted through `SSL_CERT_FILE`, which the platform verifier reads
//! on Linux), with a self-signed one and a pin, reloaded on SIGHUP, and behind a real nginx
//! that terminates TLS (docs/deploy.md's configuration). Refusals exit 3 with the reason in
//! words: unknown CA, expired, another name, not the pinned certificate.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failed test

mod common;

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use common::exec_with;
use tidings_testkit::TestCa;

const PASSWORD: &str = "correct horse battery\n";

/// `tidings serve` with TLS flags; its first lines (URL, fingerprint) read.
struct TlsServer {
    child: Child,
    url: String,
    fingerprint: String,
    port: u16,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_tls(data: &Path, flags: &[&str]) -> TlsServer {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .args(flags)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let url = line.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(url.starts_with("https://127.0.0.1:"), "first line: {line:?}");
    line.clear();
    out.read_line(&mut line).unwrap();
    let fingerprint = line.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(fingerprint.starts_with("sha256:"), "second line: {line:?}");
    // Keep reading what it prints, so that it never writes to a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    let port = url.rsplit(':').next().unwrap().parse().unwrap();
    TlsServer { child, url, fingerprint, port }
}

fn signup(
    profile: &Path,
    server: &str,
    name: &str,
    extra: &[&str],
    env: &[(&str, &Path)],
) -> (i32, String) {
    let mut args = vec!["signup", "--server", server, "--username", name, "--password-stdin"];
    args.extend_from_slice(extra);
    let (code, _, stderr) = exec_with(profile, &args, PASSWORD, env);
    (code, stderr)
}

/// Alice sends bob a message through `server`; bob gets it exactly once.
fn chat(dir: &Path, server: &str, extra: &[&str], env: &[(&str, &Path)]) {
    let (alice, bob) = (dir.join("alice"), dir.join("bob"));
    for (p, name) in [(&alice, "alice"), (&bob, "bob")] {
        let (code, stderr) = signup(p, server, name, extra, env);
        assert_eq!(code, 0, "{name}: {stderr}");
    }
    let ok = |p: &Path, args: &[&str]| {
        let (code, lines, stderr) = exec_with(p, args, "", env);
        assert_eq!(code, 0, "tidings {args:?}: {stderr}");
        lines
    };
    let whoami = ok(&alice, &["whoami"]);
    assert_eq!(whoami[0]["encrypted"], true, "{whoami:?}");
    let room =
        ok(&alice, &["create-room", "--member", "bob"])[0]["room"].as_str().unwrap().to_owned();
    ok(&alice, &["send", &room, "through TLS"]);
    ok(&alice, &["sync"]);
    ok(&bob, &["sync"]);
    let bobs = ok(&bob, &["rooms"])[0]["room"].as_str().unwrap().to_owned();
    let texts: Vec<String> = ok(&bob, &["messages", &bobs])
        .iter()
        .filter_map(|m| m["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(texts.iter().filter(|t| *t == "through TLS").count(), 1, "{texts:?}");
}

#[test]
fn a_ca_signed_server_is_trusted_and_bad_certificates_are_refused_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Tidings test CA").unwrap();
    let ca_file = ca.write(dir.path(), "ca.pem").unwrap();
    let trust: &[(&str, &Path)] = &[("SSL_CERT_FILE", &ca_file)];
    let good = ca.leaf(dir.path(), "good", &["localhost"], (-1, 30)).unwrap();
    let server = serve_tls(
        &dir.path().join("good-server"),
        &["--tls-cert", good.cert.to_str().unwrap(), "--tls-key", good.key.to_str().unwrap()],
    );
    let by_name = format!("https://localhost:{}", server.port);
    chat(&dir.path().join("good"), &by_name, &[], trust);

    // Not trusted without the CA; the address by IP is not a name in the certificate.
    let stranger = tempfile::tempdir().unwrap();
    let other_ca =
        TestCa::new("Someone else").unwrap().write(stranger.path(), "other.pem").unwrap();
    let (code, stderr) =
        signup(&dir.path().join("u1"), &by_name, "carol", &[], &[("SSL_CERT_FILE", &other_ca)]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("not signed by an authority this device trusts"), "{stderr}");
    let (code, stderr) = signup(&dir.path().join("u2"), &server.url, "carol", &[], trust);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("for another name"), "{stderr}");

    // An expired certificate.
    let expired = ca.leaf(dir.path(), "expired", &["localhost"], (-30, -1)).unwrap();
    let old = serve_tls(
        &dir.path().join("old-server"),
        &["--tls-cert", expired.cert.to_str().unwrap(), "--tls-key", expired.key.to_str().unwrap()],
    );
    let (code, stderr) = signup(
        &dir.path().join("u3"),
        &format!("https://localhost:{}", old.port),
        "carol",
        &[],
        trust,
    );
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("expired"), "{stderr}");
}

#[test]
fn a_self_signed_server_is_used_by_its_pin_and_a_renewed_certificate_loads_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let server = serve_tls(&data, &["--tls-self-signed"]);
    let pin = server.fingerprint.clone();
    chat(&dir.path().join("pinned"), &server.url, &["--pin", &pin], &[]);
    let (code, lines, _) = exec_with(&dir.path().join("pinned/alice"), &["whoami"], "", &[]);
    assert_eq!((code, lines[0]["pin"].as_str()), (0, Some(pin.as_str())));

    // Without the pin, or with another, nobody signs in (and the password is not sent).
    let (code, stderr) = signup(&dir.path().join("u1"), &server.url, "carol", &[], &[]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("not signed by an authority"), "{stderr}");
    let wrong = format!("sha256:{}", "00".repeat(32));
    let (code, stderr) =
        signup(&dir.path().join("u2"), &server.url, "carol", &["--pin", &wrong], &[]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains(&format!("not the pinned one (it is {pin})")), "{stderr}");
    let (code, stderr) =
        signup(&dir.path().join("u3"), &server.url, "carol", &["--pin", "sha256:12"], &[]);
    assert_eq!(code, 2, "a malformed pin is a usage error: {stderr}");

    // A new certificate in place of the old, then SIGHUP: new connections get it.
    let ca = TestCa::new("renewal").unwrap();
    let renewed = ca.leaf(dir.path(), "renewed", &["localhost"], (-1, 30)).unwrap();
    std::fs::copy(&renewed.cert, data.join("tls/cert.pem")).unwrap();
    std::fs::copy(&renewed.key, data.join("tls/key.pem")).unwrap();
    let new_pin = tidings_server::tls::fingerprint(&first_der(&renewed.cert));
    let hup = Command::new("kill").args(["-HUP", &server.child.id().to_string()]).status().unwrap();
    assert!(hup.success());
    let mut reloaded = false;
    for _ in 0..50 {
        let (code, _) =
            signup(&dir.path().join("u4"), &server.url, "dave", &["--pin", &new_pin], &[]);
        if code == 0 {
            reloaded = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(reloaded, "the renewed certificate was not served after SIGHUP");
    // The old pin's profile now refuses the server: pins are strict.
    let (code, _, stderr) =
        exec_with(&dir.path().join("pinned/alice"), &["sync", "--timeout", "3"], "", &[]);
    assert_ne!(code, 0, "{stderr}");
}

/// The first certificate of a PEM file, DER.
fn first_der(pem: &Path) -> Vec<u8> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    CertificateDer::pem_file_iter(pem).unwrap().next().unwrap().unwrap().to_vec()
}

/// nginx terminating TLS in front of a plain `tidings serve` on loopback, with the
/// configuration docs/deploy.md shows.
struct Nginx {
    child: Child,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn nginx(dir: &Path, port: u16, upstream: &str, cert: &Path, key: &Path) -> Nginx {
    let conf = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/nginx.conf"))
        .unwrap()
        .replace("listen 443 ssl;", &format!("listen 127.0.0.1:{port} ssl;"))
        .replace("/etc/ssl/tidings/fullchain.pem", cert.to_str().unwrap())
        .replace("/etc/ssl/tidings/privkey.pem", key.to_str().unwrap())
        .replace("127.0.0.1:7878", upstream);
    let prefix: PathBuf = dir.join("nginx");
    std::fs::create_dir_all(prefix.join("logs")).unwrap();
    let main = format!(
        "daemon off; master_process off; pid {p}/nginx.pid; error_log {p}/logs/error.log;\n\
         events {{ worker_connections 256; }}\n\
         http {{ access_log off; client_body_temp_path {p}/body; proxy_temp_path {p}/proxy;\n{conf}\n}}\n",
        p = prefix.display()
    );
    let path = prefix.join("nginx.conf");
    std::fs::write(&path, main).unwrap();
    // Owned at once, so that it is killed (and waited for) on every path out of here.
    let nginx = Nginx {
        child: Command::new("nginx")
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&path)
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx (installed by cargo xtask test)"),
    };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return nginx;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = std::fs::read_to_string(prefix.join("logs/error.log")).unwrap_or_default();
    panic!("nginx did not start: {log}");
}

#[test]
fn the_cli_chats_through_nginx_terminating_tls_with_the_documented_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Tidings test CA").unwrap();
    let ca_file = ca.write(dir.path(), "ca.pem").unwrap();
    let cert = ca.leaf(dir.path(), "proxy", &["localhost"], (-1, 30)).unwrap();
    let plain = common::serve(&dir.path().join("server"));
    let upstream = plain.url.trim_start_matches("http://").to_owned();
    let port = free_port();
    let _nginx = nginx(dir.path(), port, &upstream, &cert.cert, &cert.key);
    chat(
        &dir.path().join("users"),
        &format!("https://localhost:{port}"),
        &[],
        &[("SSL_CERT_FILE", &ca_file)],
    );
}
