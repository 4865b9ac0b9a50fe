//! Prompt-cache affinity: extracting and hashing the stable prefix of a 20 KB request body
//! (target ≤ 5 µs), next to a clock read.
//!
//! Times are the benchmark thread's CPU time (see `support/thread_cpu.rs`).
//!
//! Run: `cargo bench -p ai-key-rotator --bench affinity -- --warm-up-time 1 --measurement-time 3`.
//! Figures go in BENCHMARKS.md.

#[path = "support/thread_cpu.rs"]
mod thread_cpu;

use std::fmt::Write;
use std::hint::black_box;
use std::time::Instant;

use ai_key_rotator::classify::Api;
use ai_key_rotator::prefix_hash;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use thread_cpu::ThreadCpu;

const SIZE: usize = 20 * 1024;

/// Prose with quotes and escapes, as prompts have.
fn prose(len: usize) -> String {
    let words = [
        "the",
        "assistant",
        "answers",
        "briefly,",
        "quoting",
        "\\\"sources\\\"",
        "and",
        "code:",
        "fn",
        "main()",
        "{}",
        "\\n",
        "when",
        "asked.",
    ];
    let mut s = String::new();
    let mut i = 0;
    while s.len() < len {
        s.push_str(words[i % words.len()]);
        s.push(' ');
        i += 1;
    }
    s
}

fn tools(n: usize) -> String {
    let mut s = String::from("[");
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        write!(
            s,
            r#"{{"type":"function","function":{{"name":"tool_{i}","description":"{}","parameters":{{"type":"object","properties":{{"query":{{"type":"string"}},"limit":{{"type":"integer","minimum":1}}}},"required":["query"]}}}}}}"#,
            prose(300)
        )
        .unwrap();
    }
    s.push(']');
    s
}

/// A ~20 KB chat conversation: a 6 KB system prompt, 8 tools, then turns up to `SIZE`.
/// `tools_last`: the tools come after the messages, so the whole body is scanned.
fn openai_chat(tools_last: bool) -> String {
    let tools = tools(8);
    let mut messages = format!(
        r#"[{{"role":"system","content":"{}"}},{{"role":"user","content":"{}"}}"#,
        prose(6 * 1024),
        prose(200)
    );
    let mut turn = 0;
    while messages.len() + tools.len() < SIZE - 200 {
        let role = if turn % 2 == 0 { "assistant" } else { "user" };
        write!(
            messages,
            r#",{{"role":"{role}","content":"{}"}}"#,
            prose(400)
        )
        .unwrap();
        turn += 1;
    }
    messages.push(']');
    if tools_last {
        format!(r#"{{"model":"gpt-4o","messages":{messages},"stream":true,"tools":{tools}}}"#)
    } else {
        format!(r#"{{"model":"gpt-4o","tools":{tools},"stream":true,"messages":{messages}}}"#)
    }
}

fn anthropic() -> String {
    let tools = tools(8);
    let mut messages = format!(r#"[{{"role":"user","content":"{}"}}"#, prose(200));
    let mut turn = 0;
    while messages.len() + tools.len() < SIZE - 6 * 1024 - 200 {
        let role = if turn % 2 == 0 { "assistant" } else { "user" };
        write!(
            messages,
            r#",{{"role":"{role}","content":"{}"}}"#,
            prose(400)
        )
        .unwrap();
        turn += 1;
    }
    messages.push(']');
    format!(
        r#"{{"model":"claude-sonnet-4-5","max_tokens":1024,"system":"{}","messages":{messages},"tools":{tools}}}"#,
        prose(6 * 1024)
    )
}

fn bench(c: &mut Criterion<ThreadCpu>) {
    let mut g = c.benchmark_group("prefix-hash-20KB");
    g.bench_function("Instant::now (reference)", |b| {
        b.iter(|| black_box(Instant::now()))
    });
    for (name, api, body) in [
        ("openai chat, tools first", Api::OpenAi, openai_chat(false)),
        (
            "openai chat, tools after the messages",
            Api::OpenAi,
            openai_chat(true),
        ),
        ("anthropic, tools last", Api::Anthropic, anthropic()),
    ] {
        let body = body.into_bytes();
        assert!(
            (SIZE - 1024..=SIZE + 1024).contains(&body.len()),
            "{name}: {} bytes",
            body.len()
        );
        assert!(prefix_hash(api, &body).is_some(), "{name}: no prefix");
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| black_box(prefix_hash(api, black_box(&body))))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = bench
}
criterion_main!(benches);
