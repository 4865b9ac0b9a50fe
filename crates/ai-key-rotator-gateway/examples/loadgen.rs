//! A fixed-rate (open-loop) HTTP/1.1 load generator for `scripts/bench-gateway.sh`, because
//! Debian's `wrk` has no `-R`.
//!
//! `loadgen ADDR PATH RATE SECONDS CONNECTIONS [TOKEN] [BODY]`
//!
//! Request `i` is due at `start + i / RATE`; connections take turns (`i mod CONNECTIONS`), each
//! on its own thread with a blocking keep-alive socket (`TCP_NODELAY`). Latency is measured
//! from the due time, not from when the request was actually sent, so a stall is counted in
//! full (no coordinated omission). Prints achieved rate and p50/p90/p99/max in microseconds.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 6 {
        eprintln!("usage: loadgen ADDR PATH RATE SECONDS CONNECTIONS [TOKEN] [BODY]");
        std::process::exit(2);
    }
    let addr = args[1].clone();
    let path = args[2].clone();
    let rate: f64 = args[3].parse().expect("RATE");
    let seconds: f64 = args[4].parse().expect("SECONDS");
    let conns: usize = args[5].parse().expect("CONNECTIONS");
    let token = args.get(6).cloned().unwrap_or_default();
    let body = args.get(7).cloned().unwrap_or_default();
    let total = (rate * seconds) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let auth = if token.is_empty() {
        String::new()
    } else {
        format!("authorization: Bearer {token}\r\n")
    };
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\n{auth}content-type: application/json\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    let start = Instant::now() + Duration::from_millis(100);
    let threads: Vec<_> = (0..conns)
        .map(|c| {
            let (addr, request) = (addr.clone(), request.clone());
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(&addr).expect("connect");
                s.set_nodelay(true).unwrap();
                let mut lat = Vec::with_capacity(total / conns + 1);
                let mut buf = vec![0u8; 64 * 1024];
                let mut errors = 0u64;
                for i in (c..total).step_by(conns) {
                    let due = start + interval * i as u32;
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    s.write_all(request.as_bytes()).unwrap();
                    if !read_response(&mut s, &mut buf) {
                        errors += 1;
                    }
                    lat.push(due.elapsed());
                }
                (lat, errors)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(total);
    let mut errors = 0;
    for t in threads {
        let (l, e) = t.join().unwrap();
        all.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)].as_micros();
    println!(
        "requests={} errors={errors} rate={:.0}/s p50_us={} p90_us={} p99_us={} max_us={}",
        all.len(),
        all.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        all.last().map_or(0, |d| d.as_micros())
    );
}

/// Reads one response with a `content-length` body; returns whether it was a 2xx.
fn read_response(s: &mut TcpStream, buf: &mut [u8]) -> bool {
    let mut have = 0;
    loop {
        let n = s.read(&mut buf[have..]).expect("read");
        assert!(n > 0, "connection closed");
        have += n;
        let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("responses in the benchmark carry content-length");
        while have < end + 4 + len {
            let n = s.read(&mut buf[have..]).expect("read");
            assert!(n > 0, "connection closed");
            have += n;
        }
        return head.starts_with("http/1.1 2");
    }
}
