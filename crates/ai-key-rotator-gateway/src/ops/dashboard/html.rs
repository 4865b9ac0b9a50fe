//! The dashboard page: HTML with its CSS and JavaScript embedded (`include_str!`), so the binary
//! serves it without files, a CDN or a build step. The server renders the data it may show into
//! the page (readable without JavaScript); the script then keeps it live.

use std::fmt::Write as _;

use super::{Dashboard, KeyView, ProviderView};

const STYLE: &str = include_str!("style.css");
const SCRIPT: &str = include_str!("dashboard.js");

/// The page, with `data` rendered in when the request may read it.
pub(crate) fn page(data: Option<&Dashboard>) -> String {
    let mut out = String::with_capacity(16 * 1024);
    out.push_str(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>ai-key-rotator</title><style>",
    );
    out.push_str(STYLE);
    out.push_str("</style></head><body>\n<header><h1>ai-key-rotator</h1>");
    match data {
        Some(d) => {
            let _ = write!(
                out,
                "<span id=\"store\" class=\"pill {}\">store: {}{}</span>",
                d.store.state,
                d.store.state,
                d.store
                    .cause
                    .as_deref()
                    .map(|c| format!(" ({})", esc(c)))
                    .unwrap_or_default()
            );
            let _ = write!(
                out,
                "<span id=\"updated\" class=\"mute\">updated {}</span>",
                time(d.at)
            );
        }
        None => out.push_str(
            "<span id=\"store\" class=\"pill\"></span>\
             <span id=\"updated\" class=\"mute\">a token is needed</span>",
        ),
    }
    out.push_str(
        "<button id=\"show-auth\" type=\"button\">tokens</button>\
         <button id=\"reload\" type=\"button\" hidden>reload configuration</button>\
         <span id=\"msg\"></span></header>\n",
    );
    let _ = write!(
        out,
        "<form id=\"auth\"{}><input id=\"token\" type=\"password\" autocomplete=\"off\" \
         placeholder=\"client token\" aria-label=\"client token\">\
         <input id=\"admin\" type=\"password\" autocomplete=\"off\" \
         placeholder=\"admin token (optional)\" aria-label=\"admin token\">\
         <button type=\"submit\">use</button><button id=\"forget\" type=\"button\">forget</button>\
         <span class=\"mute\">kept in this tab only</span></form>",
        if data.is_some() { " hidden" } else { "" }
    );
    out.push_str("\n<main id=\"providers\">");
    match data {
        Some(d) => {
            for p in &d.providers {
                provider(&mut out, p, d.at);
            }
        }
        None => out.push_str(
            "<noscript><p>This gateway asks for a client token. Without JavaScript, read \
             <code>/status</code> with it, or run the gateway with \
             <code>allow_unauthenticated</code> on loopback to see this page rendered.</p>\
             </noscript>",
        ),
    }
    out.push_str("</main>\n<script>");
    out.push_str(SCRIPT);
    out.push_str("</script></body></html>\n");
    out
}

fn provider(out: &mut String, p: &ProviderView, at: u64) {
    let next = match p.next_at {
        None => "none will come back by itself".to_owned(),
        Some(t) if t <= at => "now".to_owned(),
        Some(t) => format!(
            "<span class=\"countdown\" data-until=\"{t}\">{}</span>",
            left(t, at)
        ),
    };
    let _ = write!(
        out,
        "<section class=\"provider\" data-name=\"{name}\"><h2>{name} <span class=\"mute\">{} · \
         {}</span></h2><div class=\"facts\"><span>healthy <b class=\"healthy\">{}/{}</b></span>\
         <span>next key back <b class=\"next\">{next}</b></span><span>last minute <b \
         class=\"minute\">{}</b> requests, <b>{}</b> errors</span><span>today <b \
         class=\"today\">{}</b> requests, <b>{}</b> errors</span>",
        esc(p.family),
        esc(&p.strategy),
        p.healthy,
        p.total,
        p.minute.requests,
        p.minute.errors,
        p.today.requests,
        p.today.errors,
        name = esc(&p.name),
    );
    let _ = write!(
        out,
        "<span>tokens today <b class=\"tokens\">{}</b></span>",
        tokens(p.tokens_today.input, p.tokens_today.output)
    );
    out.push_str("</div>");
    if !p.budgets.is_empty() {
        out.push_str("<ul class=\"budgets\">");
        for b in &p.budgets {
            budget(out, b, at);
        }
        out.push_str("</ul>");
    }
    out.push_str(
        "<div class=\"wrap\"><table><thead><tr><th>key</th><th>state</th><th>when</th>\
         <th>last verdict</th><th>used</th><th>today</th><th>tokens today</th><th>headroom</th>\
         <th>scope</th><th></th></tr></thead><tbody>",
    );
    for k in &p.keys {
        key(out, k, at);
    }
    out.push_str("</tbody></table></div></section>\n");
}

fn key(out: &mut String, k: &KeyView, at: u64) {
    let mut why = String::new();
    if let Some(r) = &k.reason {
        why.push_str(&esc(&r.cause));
        if let Some(s) = &r.scope {
            let _ = write!(why, " <span class=\"mute\">(scope {})</span>", esc(s));
        }
        if let Some(t) = r.provider_reset {
            let _ = write!(
                why,
                " <span class=\"mute\">provider reset {}</span>",
                time(t)
            );
        }
    }
    let mut when = Vec::new();
    if let Some(t) = k.since {
        when.push(format!("since {}", time(t)));
    }
    if let Some(t) = k.until {
        when.push(format!(
            "until {} (<span class=\"countdown\" data-until=\"{t}\">{}</span>)",
            time(t),
            left(t, at)
        ));
    }
    // As the script does: no answers yet reads "none yet" (tokens come with answers).
    let answers = if k
        .today
        .get("requests")
        .and_then(|n| n.as_u64())
        .unwrap_or(0)
        == 0
    {
        "<span class=\"mute\">none yet</span>".to_owned()
    } else {
        k.today
            .iter()
            .map(|(c, n)| format!("{}&nbsp;{n}", esc(c)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = write!(
        out,
        "<tr class=\"key\" data-fp=\"{fp}\" data-state=\"{state}\"><td data-l=\"key\">{} <code \
         class=\"fp\">{fp}</code></td><td data-l=\"state\"><span class=\"state {state}\">{state}\
         </span> {why}</td><td data-l=\"when\">{}</td><td data-l=\"last\">{}</td><td \
         data-l=\"used\" class=\"used\">{}</td><td data-l=\"today\" class=\"answers\">{answers}\
         </td><td data-l=\"tokens today\" class=\"tokens\">{}</td><td data-l=\"headroom\">{}</td><td data-l=\"scope\">{}{}</td><td></td></tr>",
        esc(k.label.as_deref().unwrap_or("")),
        when.join("<br>"),
        k.last
            .as_ref()
            .map(|l| format!("{} {}", l.class, time(l.at)))
            .unwrap_or_default(),
        k.used,
        tokens(k.tokens_today.input, k.tokens_today.output),
        k.remaining.map(|r| r.to_string()).unwrap_or_default(),
        esc(k.scope.as_deref().unwrap_or("")),
        k.weight.map(|w| format!(" w{w}")).unwrap_or_default(),
        fp = esc(&k.fingerprint),
        state = k.state,
    );
}

/// Tokens in and out, as the script writes them.
fn tokens(input: u64, output: u64) -> String {
    format!("{input}&nbsp;in / {output}&nbsp;out")
}

/// One budget limit: `scope:org requests per day 120 / 10000 (day, resets in 3h 2m 1s)`, as the
/// script writes it.
fn budget(out: &mut String, b: &crate::ops::budgets::BudgetRow<u64>, at: u64) {
    let reset = match b.resets_at {
        Some(t) if t > at => format!(
            ", resets in <span class=\"countdown\" data-until=\"{t}\">{}</span>",
            left(t, at)
        ),
        _ => String::new(),
    };
    let _ = write!(
        out,
        "<li class=\"budget\" data-budget=\"{name}\" data-kind=\"{kind}\">{shown} {words} <b \
         class=\"use\">{used} / {limit}</b> <span class=\"mute\">({window}{reset}){fleet}</span>\
         </li>",
        name = esc(&b.budget),
        shown = if b.budget == "keys" {
            "all keys".to_owned()
        } else {
            esc(&b.budget)
        },
        kind = b.kind,
        words = b.kind.replace('_', " "),
        used = b.used,
        limit = b.limit,
        window = b.window,
        fleet = if b.fleet { " fleet-wide" } else { "" },
    );
}

/// `ms` as `2026-11-30 01:02:03Z`.
fn time(ms: u64) -> String {
    let s = ai_key_rotator::Timestamp::from_millis(ms).to_string();
    format!("{} {}Z", &s[..10], &s[11..19])
}

/// The time left until `until`, as the script shows it.
fn left(until: u64, now: u64) -> String {
    let s = until.saturating_sub(now).div_ceil(1000);
    if s == 0 {
        return "now".into();
    }
    let (d, h, m, r) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    let mut out = String::new();
    if d > 0 {
        let _ = write!(out, "{d}d ");
    }
    if d > 0 || h > 0 {
        let _ = write!(out, "{h}h ");
    }
    if d > 0 || h > 0 || m > 0 {
        let _ = write!(out, "{m}m ");
    }
    let _ = write!(out, "{r}s");
    out
}

/// HTML-escapes text (labels and causes come from configuration and providers).
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_small_and_escapes_what_it_shows() {
        assert!(page(None).len() < super::super::PAGE_LIMIT);
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(left(61_000, 0), "1m 1s");
        assert_eq!(left(1, 0), "1s");
        assert_eq!(left(0, 5), "now");
        assert_eq!(left(90_061_000, 0), "1d 1h 1m 1s");
        // No external requests: nothing in the page names another origin.
        let p = page(None);
        assert!(
            !p.contains("http://") && !p.contains("https://"),
            "external reference"
        );
    }
}
