//! The control channel's line handler: one JSON request per line in, one
//! JSON reply per line out.
//!
//! Input: what a client sends before it closes. Invariants: one reply line
//! per request line the server reads (up to its 64 KiB limit, stopping at
//! the first line that is not UTF-8); each reply is JSON that parses as a
//! `Reply`; a line that parses as a `Request` is answered by the controller
//! (and the request survives a JSON round trip), any other line gets a
//! "bad request" error.

#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use veil_engine::CacheStats;
use veil_system::control::{Controller, Reply, ReplyFuture, Request, answer_bytes};

const MAX_LINE: usize = veil_system::control::MAX_REQUEST as usize;

struct Stub;

impl Controller for Stub {
    fn handle(&self, request: Request) -> ReplyFuture<'_> {
        Box::pin(async move { expected(&request) })
    }
}

/// What the stub controller answers.
fn expected(request: &Request) -> Reply {
    match request {
        Request::CacheStats => Reply::Cache {
            ok: true,
            cache: Box::new(CacheStats::default()),
        },
        other => Reply::error(format!("stub: {other:?}")),
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let out = runtime().block_on(answer_bytes(data, Arc::new(Stub)));
    let replies: Vec<&[u8]> = out
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert!(
        out.is_empty() || out.ends_with(b"\n"),
        "a reply without its newline"
    );
    let requests = lines_read(&data[..data.len().min(MAX_LINE)]);
    assert_eq!(replies.len(), requests.len(), "one reply per request line");
    for (line, reply) in requests.iter().zip(&replies) {
        let reply: Reply = serde_json::from_slice(reply).unwrap_or_else(|e| {
            panic!(
                "reply is not a Reply: {e}: {:?}",
                String::from_utf8_lossy(reply)
            )
        });
        match serde_json::from_str::<Request>(line) {
            Ok(request) => {
                let json = serde_json::to_string(&request).expect("a request serialises");
                let back: Request = serde_json::from_str(&json).expect("a request reads back");
                assert_eq!(request, back, "request changed through JSON: {json}");
                assert_eq!(
                    reply,
                    expected(&request),
                    "the controller's reply, unchanged"
                );
            }
            Err(_) => match reply {
                Reply::Error { ok, error } => {
                    assert!(!ok);
                    assert!(error.starts_with("bad request: "), "{error}");
                }
                other => panic!("a bad request answered with {other:?}"),
            },
        }
    }
});

/// The lines a line reader returns from `input`: split at `\n` (a final
/// `\r` dropped), the last one even without its newline, until one that is
/// not UTF-8.
fn lines_read(input: &[u8]) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let (line, next) = match rest.iter().position(|b| *b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &[][..]),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Ok(line) = std::str::from_utf8(line) else {
            break;
        };
        lines.push(line);
        rest = next;
    }
    lines
}
