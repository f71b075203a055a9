//! Helpers shared by the CLI's test binaries: the real `tidings serve` as a child process and
//! the client commands run as scripts would run them.

// Each test binary uses a different subset.
#![allow(dead_code)]

use std::{
    io::{BufRead, BufReader, Write},
    path::Path,
    process::{Child, Command, Stdio},
};

use serde_json::Value;

/// A `tidings serve` child process, killed when dropped.
pub struct Server {
    /// The process (tests kill -9 it on purpose).
    pub child: Child,
    /// Its HTTP base URL, as printed on its first line.
    pub url: String,
}

impl Server {
    /// The websocket URL.
    pub fn ws_url(&self) -> String {
        self.url.replace("http://", "ws://") + "/v1/ws"
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `tidings serve` on `addr` (port 0 for any) with its data in `data`.
pub fn serve_on(addr: &str, data: &Path) -> Server {
    serve_with(addr, data, &[])
}

/// Starts `tidings serve` on `addr` with its data in `data` and `extra` flags.
pub fn serve_with(addr: &str, data: &Path, extra: &[&str]) -> Server {
    serve_with_env(addr, data, extra, &[])
}

/// Starts `tidings serve` with `extra` flags and `env` variables.
pub fn serve_with_env(addr: &str, data: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["serve", "--listen", addr])
        .args(extra)
        .envs(env.iter().copied())
        .arg("--data")
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the tidings binary starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line).unwrap();
    let url = line.trim().rsplit(' ').next().unwrap_or_default().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "first line: {line:?}");
    Server { child, url }
}

/// Starts `tidings serve` on a free loopback port.
pub fn serve(data: &Path) -> Server {
    serve_on("127.0.0.1:0", data)
}

/// `tidings --json --profile DIR`, ready for a command. Tokens stay in the profile: a test
/// run on a desktop leaves nothing in its user's keychain (tests/keychain.rs uses one of
/// its own).
pub fn command(profile: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tidings"));
    c.arg("--json").arg("--profile").arg(profile).env("TIDINGS_KEYCHAIN", "off");
    c
}

/// Runs a client command with `stdin`; returns its exit code and JSON lines.
pub fn exec(profile: &Path, args: &[&str], stdin: &str) -> (i32, Vec<Value>) {
    let (code, lines, _) = exec_with(profile, args, stdin, &[]);
    (code, lines)
}

/// Runs a client command with `stdin` and environment variables `env`; returns its exit
/// code, JSON lines and what it wrote to stderr.
pub fn exec_with(
    profile: &Path,
    args: &[&str],
    stdin: &str,
    env: &[(&str, &Path)],
) -> (i32, Vec<Value>, String) {
    let mut c = command(profile);
    c.args(args).envs(env.iter().map(|(k, v)| (*k, v.as_os_str())));
    run(c, stdin)
}

/// Runs a prepared `tidings` command with `stdin`; returns its exit code, JSON lines and
/// what it wrote to stderr.
pub fn run(mut c: Command, stdin: &str) -> (i32, Vec<Value>, String) {
    let mut child =
        c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect();
    (out.status.code().unwrap_or(-1), lines, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Runs a client command that must succeed, with `stdin`.
pub fn ok_stdin(profile: &Path, args: &[&str], stdin: &str) -> Vec<Value> {
    let (code, lines, stderr) = exec_with(profile, args, stdin, &[]);
    assert_eq!(code, 0, "tidings {args:?} failed: {stderr}");
    lines
}

/// Runs a client command that must succeed.
pub fn ok(profile: &Path, args: &[&str]) -> Vec<Value> {
    ok_stdin(profile, args, "")
}

/// Signs each `(profile, username, "signup" | "login")` of `dir` in to the server at `url`,
/// with the tests' password; a failure fails the test.
pub fn sign_in_all(dir: &Path, url: &str, who: &[(&str, &str, &str)]) {
    for (profile, name, cmd) in who {
        let args = [*cmd, "--server", url, "--username", name, "--password-stdin"];
        assert_eq!(exec(&dir.join(profile), &args, "correct horse battery\n").0, 0, "{profile}");
    }
}

/// A TCP proxy to `target` (`host:port`) forwarding at most `bytes_per_sec` each way on each
/// connection, like a slow uplink; returns its `host:port`. It runs until the test ends.
pub fn throttled_proxy(target: &str, bytes_per_sec: usize) -> String {
    use std::net::{TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let target = target.to_owned();
    let pump = move |mut from: TcpStream, mut to: TcpStream| {
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 16 * 1024];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 || to.write_all(&buf[..n]).is_err() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_secs_f64(
                    n as f64 / bytes_per_sec as f64,
                ));
            }
            let _ = to.shutdown(std::net::Shutdown::Write);
        });
    };
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(&target) else { continue };
            let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else { continue };
            pump(client, server);
            pump(s2, c2);
        }
    });
    addr
}

/// The entries of `dir` (none if it does not exist).
pub fn files_in(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}
