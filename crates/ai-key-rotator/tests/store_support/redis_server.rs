//! A private `redis-server` on a free loopback port, that a test can kill and restart.
// Included by the tests and by `benches/store.rs`; each uses only some of it.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    /// Extra `redis-server` arguments (a password, `--replicaof`).
    args: Vec<String>,
    /// The TLS port, for a server started by [`start_tls`](Self::start_tls).
    pub tls_port: Option<u16>,
    /// The test CA and the server's certificate, which a restart reads again.
    certs: Option<tempfile::TempDir>,
}

/// A free loopback port (the listener is dropped at once; the OS does not hand it out again
/// soon).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `openssl` with `args` in `dir`; whether it succeeded.
fn openssl(dir: &std::path::Path, args: &[&str]) -> bool {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl RedisServer {
    /// Starts a server, or prints why not and returns `None` when no `redis-server` exists.
    pub fn start() -> Option<Self> {
        Self::start_with(&[])
    }

    /// Starts a server with extra arguments, e.g. `["--requirepass", "pw"]`.
    pub fn start_with(args: &[&str]) -> Option<Self> {
        if Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            println!("SKIPPED: no `redis-server` binary on PATH (apt-get install redis-server)");
            return None;
        }
        let port = free_port();
        let mut server = RedisServer {
            child: None,
            port,
            dir: tempfile::tempdir().unwrap(),
            args: args.iter().map(|a| a.to_string()).collect(),
            tls_port: None,
            certs: None,
        };
        server.restart();
        Some(server)
    }

    /// Starts a server that also listens with TLS on [`tls_port`](Self::tls_port), with a
    /// certificate for `127.0.0.1` and `localhost` signed by a test CA made here (by the
    /// `openssl` command). Returns the server and the CA certificate (PEM), or `None` when
    /// `openssl` or `redis-server` is missing.
    pub fn start_tls() -> Option<(Self, Vec<u8>)> {
        let certs = tempfile::tempdir().unwrap();
        let dir = certs.path();
        let made = openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=akr test ca",
            ],
        ) && openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        ) && std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .is_ok()
            && openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    "server.csr",
                    "-CA",
                    "ca.crt",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    "server.crt",
                    "-days",
                    "2",
                    "-extfile",
                    "ext.cnf",
                ],
            );
        if !made {
            println!(
                "SKIPPED: the `openssl` command could not make a test CA (apt-get install openssl)"
            );
            return None;
        }
        let tls_port = free_port();
        let path = |f: &str| dir.join(f).display().to_string();
        let args = [
            "--tls-port".to_owned(),
            tls_port.to_string(),
            "--tls-cert-file".to_owned(),
            path("server.crt"),
            "--tls-key-file".to_owned(),
            path("server.key"),
            "--tls-ca-cert-file".to_owned(),
            path("ca.crt"),
            "--tls-auth-clients".to_owned(),
            "no".to_owned(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut server = Self::start_with(&args)?;
        server.tls_port = Some(tls_port);
        let ca = std::fs::read(dir.join("ca.crt")).unwrap();
        server.certs = Some(certs);
        Some((server, ca))
    }

    /// The `rediss://` URL of a server started by [`start_tls`](Self::start_tls).
    pub fn tls_url(&self) -> String {
        format!(
            "rediss://127.0.0.1:{}",
            self.tls_port.expect("a TLS server")
        )
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        assert!(self.child.is_none());
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        // A server with a password answers NOAUTH: it is up all the same.
        while !self
            .command(&["PING"])
            .is_some_and(|r| r == "+PONG\r\n" || r.starts_with("-NOAUTH"))
        {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts a read-only replica of `primary` and waits until it synced, so that it
    /// answers every command (a replica loading its first copy answers LOADING meanwhile).
    pub fn start_replica_of(primary: &RedisServer) -> Option<Self> {
        let port = primary.port.to_string();
        let replica = Self::start_with(&["--replicaof", "127.0.0.1", &port])?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !replica
            .command(&["INFO", "replication"])
            .is_some_and(|r| r.contains("master_link_status:up"))
        {
            assert!(Instant::now() < deadline, "the replica did not sync");
            std::thread::sleep(Duration::from_millis(10));
        }
        Some(replica)
    }

    /// SIGKILL, no goodbye.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends one command and returns the raw reply (enough for short replies).
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut req = format!("*{}\r\n", args.len());
        for a in args {
            req.push_str(&format!("${}\r\n{}\r\n", a.len(), a));
        }
        s.write_all(req.as_bytes()).ok()?;
        let mut buf = vec![0u8; 1 << 16];
        let mut out = Vec::new();
        // Read until the reply stops coming.
        s.set_read_timeout(Some(Duration::from_millis(100))).ok()?;
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(_) if !out.is_empty() => break,
                Err(_) => return None,
            }
        }
        Some(String::from_utf8_lossy(&out).into_owned())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
