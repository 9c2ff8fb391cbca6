//! The shared HTTP cache against a scripted origin on loopback: one case per
//! rule of RFC 9111, each counting the requests that reached the origin to
//! prove a hit or a miss. Plain HTTP only: HTTPS inside CONNECT is never
//! visible to the cache, so there is nothing to test there.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::HeaderMap;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use veil_engine::{EngineConfig, EngineHandle};
use veil_tests::{Script, ScriptedOrigin, start_engine};

/// What a client got back through the proxy.
#[derive(Debug)]
struct Got {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

struct Fixture {
    origin: ScriptedOrigin,
    engine: EngineHandle,
}

impl Fixture {
    async fn new() -> Self {
        Self::with(|_| {}).await
    }

    async fn with(tweak: impl FnOnce(&mut EngineConfig)) -> Self {
        let origin = ScriptedOrigin::start().await;
        let engine = start_engine(tweak).await;
        Self { origin, engine }
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Got {
        self.send(Method::GET, path, headers).await
    }

    async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Got {
        send(
            self.engine.local_addr(),
            method,
            &self.origin.url(path),
            headers,
        )
        .await
    }
}

/// One request in absolute form over a fresh connection to the proxy.
async fn send(proxy: SocketAddr, method: Method, url: &str, headers: &[(&str, &str)]) -> Got {
    let stream = TcpStream::connect(proxy).await.expect("proxy accepts");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let uri: hyper::Uri = url.parse().expect("url");
    let mut req = Request::builder()
        .method(method)
        .uri(uri.clone())
        .header("host", uri.authority().expect("authority").as_str());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Empty::<Bytes>::new()).expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(20), sender.send_request(req))
        .await
        .expect("answer within 20 s")
        .expect("response");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Got {
        status,
        headers,
        body,
    }
}

const FRESH: &[(&str, &str)] = &[("cache-control", "max-age=60")];

// RFC 9111 4.2.1: a response with max-age is fresh for that long and is
// served without contacting the origin; 5.1: what is served carries `Age`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_age_fresh_hit_carries_age() {
    let f = Fixture::new().await;
    f.origin.script("/a", Script::ok("hello", FRESH));
    let first = f.get("/a", &[]).await;
    assert_eq!((first.status, first.text().as_str()), (200, "hello"));
    let second = f.get("/a", &[]).await;
    assert_eq!((second.status, second.text().as_str()), (200, "hello"));
    assert_eq!(f.origin.hits("/a"), 1, "second request served from cache");
    let age: u64 = second
        .header("age")
        .expect("Age on a cached response")
        .parse()
        .expect("Age is a number");
    assert!(age < 60, "{age}");
    // No header names the proxy.
    for name in ["via", "x-cache", "x-forwarded-for"] {
        assert!(second.header(name).is_none(), "{name}: {second:?}");
    }
    let stats = f.engine.stats().cache;
    assert_eq!((stats.hits_memory, stats.misses, stats.stored), (1, 1, 1));
    assert_eq!(stats.bytes_served, 5);
}

// RFC 9111 5.1: `Age` from upstream counts against the freshness lifetime;
// the age served is at least what the origin sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn age_from_origin_is_carried_on() {
    let f = Fixture::new().await;
    f.origin.script(
        "/aged",
        Script::ok("x", &[("cache-control", "max-age=600"), ("age", "100")]),
    );
    f.get("/aged", &[]).await;
    let hit = f.get("/aged", &[]).await;
    assert_eq!(f.origin.hits("/aged"), 1);
    let age: u64 = hit.header("age").expect("Age").parse().expect("number");
    assert!((100..600).contains(&age), "{age}");
    // Already older than its max-age: stale at once, so never a hit.
    f.origin.script(
        "/old",
        Script::ok("x", &[("cache-control", "max-age=60"), ("age", "100")]),
    );
    f.get("/old", &[]).await;
    f.get("/old", &[]).await;
    assert_eq!(f.origin.hits("/old"), 2);
}

// RFC 9111 5.2.2.10: a shared cache uses s-maxage over max-age.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s_maxage_rules_a_shared_cache() {
    let f = Fixture::new().await;
    f.origin.script(
        "/s",
        Script::ok("s", &[("cache-control", "max-age=0, s-maxage=60")]),
    );
    f.get("/s", &[]).await;
    f.get("/s", &[]).await;
    assert_eq!(f.origin.hits("/s"), 1);
}

// RFC 9111 5.3: Expires in the future makes a response fresh; one in the
// past (or invalid) does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expires_sets_freshness() {
    let f = Fixture::new().await;
    f.origin.script(
        "/future",
        Script::ok("f", &[("expires", "Thu, 01 Jan 2099 00:00:00 GMT")]),
    );
    f.origin.script(
        "/past",
        Script::ok("p", &[("expires", "Thu, 01 Jan 1970 00:00:00 GMT")]),
    );
    for _ in 0..2 {
        f.get("/future", &[]).await;
        f.get("/past", &[]).await;
    }
    assert_eq!(f.origin.hits("/future"), 1);
    assert_eq!(f.origin.hits("/past"), 2);
}

// RFC 9111 4.1: with Vary, the selecting request headers must match; each
// variant is stored apart, and an equivalent value (case, spaces) matches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vary_keeps_variants_apart() {
    let f = Fixture::new().await;
    f.origin.script(
        "/v",
        Script::ok(
            "v",
            &[("cache-control", "max-age=60"), ("vary", "Accept-Language")],
        ),
    );
    let en = [("accept-language", "en-US, fr")];
    let de = [("accept-language", "de")];
    f.get("/v", &en).await;
    f.get("/v", &en).await;
    assert_eq!(f.origin.hits("/v"), 1, "same language: hit");
    f.get("/v", &de).await;
    assert_eq!(f.origin.hits("/v"), 2, "other language: miss");
    f.get("/v", &de).await;
    f.get("/v", &[("accept-language", "en-us,fr")]).await;
    assert_eq!(f.origin.hits("/v"), 2, "both variants stored");
}

// RFC 9111 3 and 5.2.2.5: a response with no-store is never stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_store_response_is_not_stored() {
    let f = Fixture::new().await;
    f.origin.script(
        "/ns",
        Script::ok("n", &[("cache-control", "no-store, max-age=60")]),
    );
    f.get("/ns", &[]).await;
    f.get("/ns", &[]).await;
    assert_eq!(f.origin.hits("/ns"), 2);
}

// RFC 9111 5.2.2.4: no-cache may be stored but is revalidated every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cache_response_revalidates_every_time() {
    let f = Fixture::new().await;
    f.origin.script(
        "/nc",
        Script::ok("nc", &[("cache-control", "no-cache"), ("etag", "\"v1\"")]),
    );
    for _ in 0..3 {
        let got = f.get("/nc", &[]).await;
        assert_eq!((got.status, got.text().as_str()), (200, "nc"));
    }
    let seen = f.origin.seen("/nc");
    assert_eq!(seen.len(), 3, "every request reached the origin");
    for later in &seen[1..] {
        assert_eq!(
            later.headers.get("if-none-match").map(|v| v.as_bytes()),
            Some(&b"\"v1\""[..]),
            "revalidated with the stored ETag"
        );
    }
    assert_eq!(f.engine.stats().cache.revalidated_not_modified, 2);
}

// RFC 9111 3 and 5.2.2.7: a shared cache does not store `private`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_is_not_stored() {
    let f = Fixture::new().await;
    f.origin.script(
        "/p",
        Script::ok("p", &[("cache-control", "private, max-age=60")]),
    );
    f.get("/p", &[]).await;
    f.get("/p", &[]).await;
    assert_eq!(f.origin.hits("/p"), 2);
}

// RFC 9111 3.5: a response to a request with Authorization is stored by a
// shared cache only when public, s-maxage or must-revalidate allow it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_needs_explicit_permission() {
    let f = Fixture::new().await;
    let auth = [("authorization", "Bearer secret")];
    f.origin.script("/auth", Script::ok("a", FRESH));
    f.get("/auth", &auth).await;
    f.get("/auth", &auth).await;
    assert_eq!(f.origin.hits("/auth"), 2, "not stored without permission");
    f.origin.script(
        "/pub",
        Script::ok("b", &[("cache-control", "public, max-age=60")]),
    );
    f.get("/pub", &auth).await;
    f.get("/pub", &auth).await;
    assert_eq!(f.origin.hits("/pub"), 1, "public allows storing");
}

// RFC 9111 4.3.1, 4.3.3 and 4.3.4: a stale entry with an ETag is
// revalidated with If-None-Match; the 304's headers replace the stored ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etag_revalidation_updates_stored_headers() {
    let f = Fixture::new().await;
    f.origin.script(
        "/e",
        Script::ok(
            "body-v1",
            &[
                ("cache-control", "max-age=1"),
                ("etag", "\"a\""),
                ("x-version", "1"),
            ],
        ),
    );
    f.get("/e", &[]).await;
    f.origin.script(
        "/e",
        Script::ok(
            "not sent on 304",
            &[
                ("cache-control", "max-age=60"),
                ("etag", "\"a\""),
                ("x-version", "2"),
            ],
        ),
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let got = f.get("/e", &[]).await;
    assert_eq!((got.status, got.text().as_str()), (200, "body-v1"));
    assert_eq!(got.header("x-version"), Some("2"), "{got:?}");
    let seen = f.origin.seen("/e");
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[1].headers.get("if-none-match").map(|v| v.as_bytes()),
        Some(&b"\"a\""[..])
    );
    // The new max-age from the 304 applies: fresh again.
    let again = f.get("/e", &[]).await;
    assert_eq!(
        (again.text().as_str(), again.header("x-version")),
        ("body-v1", Some("2"))
    );
    assert_eq!(f.origin.hits("/e"), 2);
    assert_eq!(f.engine.stats().cache.revalidated_not_modified, 1);
}

// RFC 9111 4.3.1: with only Last-Modified, revalidation uses
// If-Modified-Since; a changed response replaces the stored one (4.3.3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_modified_revalidation() {
    let f = Fixture::new().await;
    let lm = "Wed, 01 Jan 2020 00:00:00 GMT";
    f.origin.script(
        "/lm",
        Script::ok(
            "old",
            &[("cache-control", "max-age=1"), ("last-modified", lm)],
        ),
    );
    f.get("/lm", &[]).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let got = f.get("/lm", &[]).await;
    assert_eq!(got.text(), "old");
    let seen = f.origin.seen("/lm");
    assert_eq!(
        seen[1]
            .headers
            .get("if-modified-since")
            .map(|v| v.as_bytes()),
        Some(lm.as_bytes())
    );
    // The origin changed: the new body is served and stored.
    f.origin.script(
        "/lm",
        Script::ok(
            "new",
            &[
                ("cache-control", "max-age=60"),
                ("last-modified", "Thu, 02 Jan 2020 00:00:00 GMT"),
            ],
        ),
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(f.get("/lm", &[]).await.text(), "new");
    assert_eq!(f.get("/lm", &[]).await.text(), "new");
    assert_eq!(f.origin.hits("/lm"), 3);
    let stats = f.engine.stats().cache;
    assert_eq!(
        (stats.revalidated_not_modified, stats.revalidated_changed),
        (1, 1)
    );
}

// RFC 9111 5.2.1.4 and 5.2.1.1: request no-cache and max-age=0 make the
// cache revalidate a fresh entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_no_cache_and_max_age_zero_revalidate() {
    let f = Fixture::new().await;
    f.origin.script(
        "/r",
        Script::ok("r", &[("cache-control", "max-age=60"), ("etag", "\"r\"")]),
    );
    f.get("/r", &[]).await;
    f.get("/r", &[("cache-control", "no-cache")]).await;
    f.get("/r", &[("cache-control", "max-age=0")]).await;
    let seen = f.origin.seen("/r");
    assert_eq!(seen.len(), 3);
    assert!(
        seen[1..]
            .iter()
            .all(|s| s.headers.contains_key("if-none-match"))
    );
    f.get("/r", &[]).await;
    assert_eq!(f.origin.hits("/r"), 3, "still fresh for a plain request");
}

// RFC 9111 5.2.1.5: request no-store: the response is not stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_no_store_is_not_stored() {
    let f = Fixture::new().await;
    f.origin.script("/rns", Script::ok("x", FRESH));
    f.get("/rns", &[("cache-control", "no-store")]).await;
    f.get("/rns", &[]).await;
    assert_eq!(f.origin.hits("/rns"), 2);
}

// RFC 9111 5.2.1.7: only-if-cached gets 504 when nothing is stored, and the
// stored response otherwise, without contacting the origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_if_cached() {
    let f = Fixture::new().await;
    f.origin.script("/o", Script::ok("o", FRESH));
    let only = [("cache-control", "only-if-cached")];
    assert_eq!(f.get("/o", &only).await.status, 504);
    assert_eq!(f.origin.hits("/o"), 0);
    f.get("/o", &[]).await;
    let got = f.get("/o", &only).await;
    assert_eq!((got.status, got.text().as_str()), (200, "o"));
    assert_eq!(f.origin.hits("/o"), 1);
}

// RFC 9111 4.4: a successful unsafe method invalidates the stored URI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_method_invalidates() {
    let f = Fixture::new().await;
    f.origin.script("/u", Script::ok("u", FRESH));
    f.get("/u", &[]).await;
    f.get("/u", &[]).await;
    assert_eq!(f.origin.hits("/u"), 1);
    for method in [Method::POST, Method::DELETE] {
        assert_eq!(f.send(method, "/u", &[]).await.status, 200);
        f.get("/u", &[]).await;
    }
    let methods: Vec<_> = f.origin.seen("/u").into_iter().map(|s| s.method).collect();
    assert_eq!(
        methods,
        [
            Method::GET,
            Method::POST,
            Method::GET,
            Method::DELETE,
            Method::GET
        ]
    );
}

// RFC 9111 4.2.2: heuristic freshness is allowed but Veil uses none: a
// response with only Last-Modified is never served fresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_heuristic_freshness() {
    let f = Fixture::new().await;
    f.origin.script(
        "/h",
        Script::ok("h", &[("last-modified", "Wed, 01 Jan 2020 00:00:00 GMT")]),
    );
    f.get("/h", &[]).await;
    f.get("/h", &[]).await;
    assert_eq!(f.origin.hits("/h"), 2);
    f.origin.script("/none", Script::ok("n", &[]));
    f.get("/none", &[]).await;
    f.get("/none", &[]).await;
    assert_eq!(f.origin.hits("/none"), 2);
}

// RFC 9111 7.3 (privacy) and RFC 6265: Set-Cookie belongs to one user; a
// shared cache stores no response carrying it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_cookie_is_never_stored() {
    let f = Fixture::new().await;
    f.origin.script(
        "/c",
        Script::ok(
            "c",
            &[
                ("cache-control", "public, max-age=60"),
                ("set-cookie", "id=1"),
            ],
        ),
    );
    f.get("/c", &[]).await;
    let second = f.get("/c", &[]).await;
    assert_eq!(f.origin.hits("/c"), 2);
    assert!(second.header("age").is_none(), "not from the cache");
}

// RFC 9111 3.3/3.4: Veil does not store partial content; Range requests pass
// through to the origin untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_requests_pass_through() {
    let f = Fixture::new().await;
    f.origin.script("/range", Script::ok("0123456789", FRESH));
    let range = [("range", "bytes=0-3")];
    f.get("/range", &range).await;
    f.get("/range", &range).await;
    assert_eq!(f.origin.hits("/range"), 2);
    f.get("/range", &[]).await;
    f.get("/range", &range).await;
    let seen = f.origin.seen("/range");
    assert_eq!(
        seen.len(),
        4,
        "a stored full response does not answer a Range"
    );
    assert!(seen[3].headers.contains_key("range"));
}

// RFC 9110 9.3.2 with RFC 9111 4: a HEAD is answered from a stored GET.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_is_served_from_a_stored_get() {
    let f = Fixture::new().await;
    f.origin.script("/head", Script::ok("twelve bytes", FRESH));
    f.get("/head", &[]).await;
    let head = f.send(Method::HEAD, "/head", &[]).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert!(head.header("age").is_some(), "{head:?}");
    assert_eq!(head.header("content-length"), Some("12"));
    assert_eq!(f.origin.hits("/head"), 1);
}

// Veil's object limit: a larger response streams through whole, with or
// without Content-Length, and is not stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_over_the_limit_pass_through() {
    let f = Fixture::with(|c| c.cache.max_object_bytes = 4096).await;
    let big = Bytes::from(vec![b'b'; 10_000]);
    f.origin.script("/big", Script::ok(big.clone(), FRESH));
    f.origin
        .script("/chunked", Script::ok(big.clone(), FRESH).chunked());
    f.origin
        .script("/small", Script::ok(vec![b's'; 4000], FRESH).chunked());
    for path in ["/big", "/chunked", "/small"] {
        for _ in 0..2 {
            let got = f.get(path, &[]).await;
            assert_eq!(got.status, 200);
        }
    }
    assert_eq!(f.get("/big", &[]).await.body, big);
    assert_eq!(f.get("/chunked", &[]).await.body, big);
    assert_eq!(f.origin.hits("/big"), 3);
    assert_eq!(f.origin.hits("/chunked"), 3);
    assert_eq!(
        f.origin.hits("/small"),
        1,
        "a chunked body under the limit is stored"
    );
    assert!(f.engine.stats().cache.too_large >= 4);
}

// Collapsed forwarding: concurrent misses for one cold URI reach the origin
// once and are all answered from that one response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_misses_reach_the_origin_once() {
    let f = Fixture::new().await;
    f.origin.script(
        "/cold",
        Script::ok("cold", FRESH).delay(Duration::from_millis(500)),
    );
    let url = f.origin.url("/cold");
    let proxy = f.engine.local_addr();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { send(proxy, Method::GET, &url, &[]).await })
        })
        .collect();
    for task in tasks {
        let got = task.await.expect("task");
        assert_eq!((got.status, got.text().as_str()), (200, "cold"));
    }
    assert_eq!(f.origin.hits("/cold"), 1);
    let stats = f.engine.stats().cache;
    assert_eq!(stats.misses, 1, "{stats:?}");
    assert_eq!(stats.hits_memory, 49, "{stats:?}");
}

// The handle: switching the cache off, purging one URL, clearing all; and
// the counters in the serialised snapshot (what `veil status --json` shows).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_through_the_handle() {
    let f = Fixture::new().await;
    f.origin.script("/x", Script::ok("x", FRESH));
    f.origin.script("/y", Script::ok("y", FRESH));
    f.get("/x", &[]).await;
    f.get("/y", &[]).await;
    f.engine.set_cache_enabled(false);
    f.get("/x", &[]).await;
    assert_eq!(f.origin.hits("/x"), 2, "off: straight to the origin");
    f.engine.set_cache_enabled(true);
    f.get("/x", &[]).await;
    assert_eq!(f.origin.hits("/x"), 2, "on again: still stored");
    f.engine
        .cache_purge(&f.origin.url("/x"))
        .await
        .expect("purge");
    f.get("/x", &[]).await;
    f.get("/y", &[]).await;
    assert_eq!((f.origin.hits("/x"), f.origin.hits("/y")), (3, 1));
    f.engine.cache_clear().await;
    f.get("/y", &[]).await;
    assert_eq!(f.origin.hits("/y"), 2);
    assert!(f.engine.cache_purge("https://example.com/").await.is_err());

    let json = serde_json::to_value(f.engine.stats()).expect("json");
    let cache = &json["cache"];
    assert_eq!(cache["enabled"], true);
    assert!(
        cache["hits_memory"].as_u64().is_some_and(|n| n >= 2),
        "{cache}"
    );
    assert!(cache["hit_ratio"].as_f64().is_some(), "{cache}");
}

fn entry_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|items| {
            items
                .filter_map(|i| i.ok().map(|i| i.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "entry"))
                .collect()
        })
        .unwrap_or_default()
}

/// Starts an engine whose disk tier lives in `dir`, fetches `path` once,
/// waits until the copy is stored (stores happen off the data path, after
/// the client has its response), and shuts it down.
async fn fill_disk(dir: &std::path::Path, origin: &ScriptedOrigin, path: &str) {
    let dir = dir.to_owned();
    let engine = start_engine(move |c| c.cache.dir = Some(dir)).await;
    let got = send(engine.local_addr(), Method::GET, &origin.url(path), &[]).await;
    assert_eq!(got.status, 200);
    assert!(stored(&engine, 1).await, "{:?}", engine.stats().cache);
    engine.shutdown().await;
}

/// Waits (up to 10 s) until the engine has stored `n` objects.
async fn stored(engine: &EngineHandle, n: u64) -> bool {
    veil_tests::eventually(Duration::from_secs(10), || engine.stats().cache.stored >= n).await
}

// The disk tier keeps fresh responses across a restart of the engine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_tier_survives_a_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("http");
    let origin = ScriptedOrigin::start().await;
    origin.script("/d", Script::ok("kept on disk", FRESH));
    fill_disk(&dir, &origin, "/d").await;
    assert_eq!(entry_files(&dir).len(), 1);

    let d = dir.clone();
    let engine = start_engine(move |c| c.cache.dir = Some(d)).await;
    assert_eq!(engine.stats().cache.disk_objects, 1);
    let got = send(engine.local_addr(), Method::GET, &origin.url("/d"), &[]).await;
    assert_eq!((got.status, got.text().as_str()), (200, "kept on disk"));
    assert!(got.header("age").is_some());
    assert_eq!(origin.hits("/d"), 1, "served from disk after the restart");
    assert_eq!(engine.stats().cache.hits_disk, 1);
}

// A disk entry that fails its integrity check is deleted and refetched,
// never served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_disk_entry_is_refetched() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("http");
    let origin = ScriptedOrigin::start().await;
    origin.script("/k", Script::ok("intact body", FRESH));
    fill_disk(&dir, &origin, "/k").await;
    let files = entry_files(&dir);
    assert_eq!(files.len(), 1);
    let mut bytes = std::fs::read(&files[0]).expect("entry");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x20;
    std::fs::write(&files[0], bytes).expect("corrupt it");

    let d = dir.clone();
    let engine = start_engine(move |c| c.cache.dir = Some(d)).await;
    let url = origin.url("/k");
    let got = send(engine.local_addr(), Method::GET, &url, &[]).await;
    assert_eq!((got.status, got.text().as_str()), (200, "intact body"));
    assert_eq!(origin.hits("/k"), 2, "refetched from the origin");
    assert_eq!(engine.stats().cache.corrupt_dropped, 1);
    // Stored again, intact.
    let again = send(engine.local_addr(), Method::GET, &url, &[]).await;
    assert_eq!(again.text(), "intact body");
    assert_eq!(origin.hits("/k"), 2);
}

// The disk tier stays within its byte bound, dropping the least recently
// used entries first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_tier_is_bounded_lru() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("http");
    let origin = ScriptedOrigin::start().await;
    let d = dir.clone();
    let engine = start_engine(move |c| {
        c.cache.dir = Some(d);
        c.cache.disk_bytes = 12 * 1024;
    })
    .await;
    for i in 0..8 {
        let path = format!("/lru{i}");
        origin.script(&path, Script::ok(vec![b'l'; 2048], FRESH));
        send(engine.local_addr(), Method::GET, &origin.url(&path), &[]).await;
        assert!(stored(&engine, i + 1).await, "{:?}", engine.stats().cache);
        send(engine.local_addr(), Method::GET, &origin.url(&path), &[]).await;
    }
    let stats = engine.stats().cache;
    assert!(stats.disk_bytes <= 12 * 1024, "{stats:?}");
    assert!((1..8).contains(&stats.disk_objects), "{stats:?}");
    assert_eq!(entry_files(&dir).len() as u64, stats.disk_objects);
    engine.shutdown().await;
    drop(engine);
    // After a restart only the newest survive: the last one is on disk, the
    // first is not.
    let d = dir.clone();
    let engine = start_engine(move |c| {
        c.cache.dir = Some(d);
        c.cache.disk_bytes = 12 * 1024;
    })
    .await;
    send(engine.local_addr(), Method::GET, &origin.url("/lru7"), &[]).await;
    send(engine.local_addr(), Method::GET, &origin.url("/lru0"), &[]).await;
    let hits: Vec<_> = (0..8).map(|i| origin.hits(&format!("/lru{i}"))).collect();
    assert_eq!(
        (hits[7], hits[0]),
        (1, 2),
        "{hits:?} {:?}",
        engine.stats().cache
    );
}

// The real binary: `veil run` keeps its disk tier under VEIL_HOME's cache
// folder, `veil status --json` and `veil cache stats --json` show the
// counters, `veil cache purge URL` and `veil cache clear` drop entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_cache_commands() {
    use veil_tests::VeilProcess;
    let home = tempfile::tempdir().expect("VEIL_HOME");
    let veil = VeilProcess::start(home.path(), &["--listen", "127.0.0.1:0"], &[])
        .expect("veil run starts");
    let origin = ScriptedOrigin::start().await;
    origin.script("/cli", Script::ok("via the binary", FRESH));
    let url = origin.url("/cli");
    for _ in 0..2 {
        let got = send(veil.addr, Method::GET, &url, &[]).await;
        assert_eq!(got.text(), "via the binary");
    }
    assert_eq!(origin.hits("/cli"), 1);
    let json = |args: &[&str]| -> serde_json::Value {
        let out = veil.command(args);
        assert!(out.status.success(), "{args:?}: {out:?}");
        serde_json::from_slice(&out.stdout).expect("JSON")
    };
    let status = json(&["status", "--json"]);
    // The hit may come from disk when the memory copy was still on its way.
    let hits = |v: &serde_json::Value| v["hits_memory"].as_u64().zip(v["hits_disk"].as_u64());
    assert_eq!(
        hits(&status["cache"]).map(|(m, d)| m + d),
        Some(1),
        "{status}"
    );
    let stats = json(&["cache", "stats", "--json"]);
    assert_eq!(hits(&stats).map(|(m, d)| m + d), Some(1), "{stats}");
    assert_eq!(stats["disk_objects"], 1, "{stats}");
    assert_eq!(
        entry_files(&home.path().join("cache").join("http")).len(),
        1
    );

    let purge = veil.command(&["cache", "purge", &url]);
    assert!(purge.status.success(), "{purge:?}");
    for _ in 0..2 {
        // The second waits for the first one's store to finish.
        send(veil.addr, Method::GET, &url, &[]).await;
    }
    assert_eq!(origin.hits("/cli"), 2, "purged: fetched again");
    let clear = veil.command(&["cache", "clear"]);
    assert!(clear.status.success(), "{clear:?}");
    send(veil.addr, Method::GET, &url, &[]).await;
    assert_eq!(origin.hits("/cli"), 3, "cleared: fetched again");
    let bad = veil.command(&["cache", "purge", "https://example.com/"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("http://"),
        "{bad:?}"
    );
}

// RFC 9111 4.3.2: a client's own If-None-Match that matches a fresh stored
// response gets 304 from the cache; one that does not match gets the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_conditional_request_answered_from_cache() {
    let f = Fixture::new().await;
    f.origin.script(
        "/cond",
        Script::ok(
            "cond",
            &[("cache-control", "max-age=60"), ("etag", "\"c1\"")],
        ),
    );
    f.get("/cond", &[]).await;
    let same = f.get("/cond", &[("if-none-match", "\"c1\"")]).await;
    assert_eq!((same.status, same.body.len()), (304, 0), "{same:?}");
    assert_eq!(same.header("etag"), Some("\"c1\""));
    let other = f.get("/cond", &[("if-none-match", "\"old\"")]).await;
    assert_eq!((other.status, other.text().as_str()), (200, "cond"));
    assert_eq!(f.origin.hits("/cond"), 1);
}

// RFC 9111 5.2.2.8: proxy-revalidate binds shared caches only;
// http-cache-semantics gives such a response no freshness in a shared cache
// (stricter than the RFC), so each request revalidates. 5.2.2.2: a
// must-revalidate response is served from the cache while it is fresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_revalidate_and_must_revalidate() {
    let f = Fixture::new().await;
    f.origin.script(
        "/pr",
        Script::ok(
            "pr",
            &[
                ("cache-control", "max-age=60, proxy-revalidate"),
                ("etag", "\"p\""),
            ],
        ),
    );
    f.origin.script(
        "/mr",
        Script::ok("mr", &[("cache-control", "max-age=60, must-revalidate")]),
    );
    for _ in 0..3 {
        assert_eq!(f.get("/pr", &[]).await.text(), "pr");
        assert_eq!(f.get("/mr", &[]).await.text(), "mr");
    }
    assert_eq!(f.origin.hits("/pr"), 3, "revalidated every time");
    assert!(
        f.origin.seen("/pr")[1..]
            .iter()
            .all(|s| s.headers.contains_key("if-none-match"))
    );
    assert_eq!(f.origin.hits("/mr"), 1, "fresh: served from cache");
}

// Privacy: a stored response keeps the request headers it varies on, but
// never the client's Authorization or Cookie in clear, on disk or anywhere;
// a revalidation still sends the real ones to the origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_not_written_to_disk() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("http");
    let origin = ScriptedOrigin::start().await;
    origin.script(
        "/priv",
        Script::ok(
            "shared",
            &[
                ("cache-control", "public, max-age=1"),
                ("etag", "\"s\""),
                ("vary", "Cookie"),
            ],
        ),
    );
    let d = dir.clone();
    let engine = start_engine(move |c| c.cache.dir = Some(d)).await;
    let url = origin.url("/priv");
    let secrets = [
        ("authorization", "Bearer top-secret-token"),
        ("cookie", "session=cookie-secret"),
    ];
    for _ in 0..2 {
        send(engine.local_addr(), Method::GET, &url, &secrets).await;
    }
    assert_eq!(origin.hits("/priv"), 1, "stored: public allows it");
    let other = [
        ("authorization", "Bearer top-secret-token"),
        ("cookie", "session=other"),
    ];
    send(engine.local_addr(), Method::GET, &url, &other).await;
    assert_eq!(origin.hits("/priv"), 2, "another cookie is another variant");
    // The second variant's copy is written just after its body was sent.
    let both = veil_tests::eventually(Duration::from_secs(5), || entry_files(&dir).len() == 2);
    assert!(both.await, "both variants on disk");
    let files = entry_files(&dir);
    for file in files {
        let text = String::from_utf8_lossy(&std::fs::read(&file).expect("entry")).into_owned();
        assert!(!text.contains("top-secret-token"), "{text}");
        assert!(!text.contains("cookie-secret"), "{text}");
    }
    tokio::time::sleep(Duration::from_millis(2100)).await;
    send(engine.local_addr(), Method::GET, &url, &secrets).await;
    let seen = origin.seen("/priv");
    assert_eq!(seen.len(), 3);
    let last = &seen[2].headers;
    assert!(
        last.contains_key("if-none-match"),
        "a revalidation: {last:?}"
    );
    assert_eq!(
        last.get("authorization").map(|v| v.as_bytes()),
        Some(&b"Bearer top-secret-token"[..])
    );
    assert_eq!(
        last.get("cookie").map(|v| v.as_bytes()),
        Some(&b"session=cookie-secret"[..])
    );
}

// RFC 9111 4.4: an unsafe method invalidates its own URL, not others. A
// POST to one URL while another URL's response is still arriving must not
// keep that response from being stored, in any interleaving: the same
// requests give the same stored state every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsafe_method_elsewhere_does_not_stop_a_store_in_flight() {
    let f = Fixture::new().await;
    f.origin.script("/other", Script::ok("ok", &[]));
    for (round, offset_ms) in (0..200).step_by(25).enumerate() {
        let path = format!("/slow{round}");
        f.origin.script(
            &path,
            Script::ok("slow", FRESH).delay(Duration::from_millis(150)),
        );
        let get = f.get(&path, &[]);
        let post = async {
            tokio::time::sleep(Duration::from_millis(offset_ms)).await;
            f.send(Method::POST, "/other", &[]).await
        };
        let (got, posted) = tokio::join!(get, post);
        assert_eq!((got.status, posted.status), (200, 200));
        let again = f.get(&path, &[]).await;
        assert_eq!(again.text(), "slow");
        assert_eq!(
            f.origin.hits(&path),
            1,
            "round {round} (POST after {offset_ms} ms): the response was stored"
        );
    }
}

// RFC 9111 5.1 and RFC 9110 6.6.1: a hit carries the origin's own `Date`,
// byte for byte; only `Age` is the cache's. (The policy crate used to put
// "now" there, in RFC 2822 form.) A response without `Date` gets the time
// it arrived, as an IMF-fixdate, and keeps it on later hits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_keep_the_origins_date() {
    let f = Fixture::new().await;
    let date = httpdate::fmt_http_date(std::time::SystemTime::now() - Duration::from_secs(3));
    f.origin.script(
        "/dated",
        Script::ok("d", &[("cache-control", "max-age=60"), ("date", &date)]),
    );
    f.get("/dated", &[]).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let hit = f.get("/dated", &[]).await;
    assert_eq!(f.origin.hits("/dated"), 1, "a hit");
    assert_eq!(hit.header("date"), Some(date.as_str()));
    assert!(
        hit.header("age").is_some_and(|a| a != "0"),
        "{:?}",
        hit.headers
    );

    f.origin.script("/undated", Script::ok("u", FRESH));
    f.get("/undated", &[]).await;
    let mut dates = Vec::new();
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let hit = f.get("/undated", &[]).await;
        let on_hit = hit.header("date").expect("a Date on the hit").to_owned();
        assert!(
            httpdate::parse_http_date(&on_hit).is_ok() && on_hit.ends_with(" GMT"),
            "an IMF-fixdate: {on_hit}"
        );
        dates.push(on_hit);
    }
    assert_eq!(f.origin.hits("/undated"), 1, "hits");
    assert_eq!(dates[0], dates[1], "the same Date on every hit");
}

// RFC 9111 5.2: Cache-Control directive names are case-insensitive, and
// every field line counts; 5.1: a list-valued Age uses its first member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directives_in_any_case_on_any_line_and_list_valued_age() {
    let f = Fixture::new().await;
    f.origin.script(
        "/mixed",
        Script::ok("m", &[("cache-control", "Max-Age=60")]),
    );
    f.get("/mixed", &[]).await;
    f.get("/mixed", &[]).await;
    assert_eq!(f.origin.hits("/mixed"), 1, "Max-Age is max-age");

    f.origin.script(
        "/nostore",
        Script::ok(
            "n",
            &[
                ("cache-control", "max-age=60"),
                ("cache-control", "No-Store"),
            ],
        ),
    );
    f.get("/nostore", &[]).await;
    f.get("/nostore", &[]).await;
    assert_eq!(
        f.origin.hits("/nostore"),
        2,
        "No-Store on its own line is no-store"
    );

    f.origin.script(
        "/lines",
        Script::ok(
            "l",
            &[
                ("cache-control", "max-age=100"),
                ("cache-control", "public"),
            ],
        ),
    );
    f.get("/lines", &[]).await;
    let hit = f.get("/lines", &[]).await;
    assert_eq!(
        f.origin.hits("/lines"),
        1,
        "max-age=100 on the first line counts"
    );
    let cc = hit.header("cache-control").unwrap_or_default().to_owned();
    assert!(cc.contains("max-age=100") && cc.contains("public"), "{cc}");

    f.origin.script(
        "/aged",
        Script::ok(
            "a",
            &[("cache-control", "max-age=3600"), ("age", "7200, 0")],
        ),
    );
    f.get("/aged", &[]).await;
    f.get("/aged", &[]).await;
    assert_eq!(
        f.origin.hits("/aged"),
        2,
        "Age 7200 is older than max-age 3600"
    );

    // A request's own No-CaChE makes the cache ask the origin again.
    f.origin.script(
        "/req",
        Script::ok("r", &[("cache-control", "max-age=60"), ("etag", "\"v1\"")]),
    );
    f.get("/req", &[]).await;
    f.get("/req", &[("cache-control", "No-CaChE")]).await;
    assert_eq!(
        f.origin.hits("/req"),
        2,
        "the client's No-CaChE is no-cache"
    );
}

// RFC 9111 4.3.2: a client whose If-Modified-Since covers the fresh stored
// response gets a 304 from the cache, not the whole body again; an older
// date gets the full response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_modified_since_is_answered_from_a_fresh_entry() {
    let f = Fixture::new().await;
    let modified = "Sun, 06 Nov 1994 08:49:37 GMT";
    f.origin.script(
        "/ims",
        Script::ok(
            "body",
            &[("cache-control", "max-age=60"), ("last-modified", modified)],
        ),
    );
    f.get("/ims", &[]).await;
    let same = f.get("/ims", &[("if-modified-since", modified)]).await;
    assert_eq!(same.status, 304, "{:?}", same.headers);
    assert!(same.body.is_empty());
    let later = f
        .get(
            "/ims",
            &[("if-modified-since", "Mon, 07 Nov 1994 08:49:37 GMT")],
        )
        .await;
    assert_eq!(later.status, 304);
    let older = f
        .get(
            "/ims",
            &[("if-modified-since", "Sat, 05 Nov 1994 08:49:37 GMT")],
        )
        .await;
    assert_eq!((older.status, older.text().as_str()), (200, "body"));
    assert_eq!(f.origin.hits("/ims"), 1, "all from the cache");
}

// RFC 9111 3: any final status the cache understands may be stored when the
// response says how long it is fresh, not only the short default list; it
// is served with its own status. Without explicit freshness these are not
// stored (no heuristics).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_statuses_with_explicit_freshness_are_stored() {
    let f = Fixture::new().await;
    for status in [299u16, 400, 499, 500, 502, 503, 504, 599] {
        let path = format!("/s{status}");
        let mut script = Script::ok(format!("status {status}"), FRESH);
        script.status = status;
        f.origin.script(&path, script);
        let first = f.get(&path, &[]).await;
        let second = f.get(&path, &[]).await;
        assert_eq!((first.status, second.status), (status, status));
        assert_eq!(second.text(), format!("status {status}"));
        assert_eq!(f.origin.hits(&path), 1, "{status} with max-age is stored");

        let bare = format!("/bare{status}");
        let mut script = Script::ok("x", &[]);
        script.status = status;
        f.origin.script(&bare, script);
        f.get(&bare, &[]).await;
        f.get(&bare, &[]).await;
        assert_eq!(f.origin.hits(&bare), 2, "{status} without freshness is not");
    }
}

// RFC 9110 5.6.7 with RFC 9111 5.3: HTTP-date is IMF-fixdate, or the
// obsolete RFC 850 and asctime formats, which recipients must accept; an
// `Expires` outside that grammar (double space, lower-case or wrong day
// name, another zone) is invalid and means already expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_date_grammar_decides_expires() {
    let f = Fixture::new().await;
    let cases = [
        ("/imf", "Thu, 01 Jan 2099 00:00:00 GMT", 1),
        ("/rfc850", "Wednesday, 01-Jan-70 00:00:00 GMT", 1),
        ("/asctime", "Thu Jan  1 00:00:00 2099", 1),
        ("/double-space", "Thu,  01 Jan 2099 00:00:00 GMT", 2),
        ("/lower-case", "thu, 01 Jan 2099 00:00:00 GMT", 2),
        ("/wrong-day", "Fri, 01 Jan 2099 00:00:00 GMT", 2),
        ("/no-such-day", "Thx, 01 Jan 2099 00:00:00 GMT", 2),
        ("/utc", "Thu, 01 Jan 2099 00:00:00 UTC", 2),
        ("/numeric-zone", "Thu, 01 Jan 2099 00:00:00 +0000", 2),
        ("/hour-24", "Thu, 01 Jan 2099 24:00:00 GMT", 2),
        ("/zero", "0", 2),
    ];
    for (path, expires, _) in cases {
        f.origin
            .script(path, Script::ok("x", &[("expires", expires)]));
    }
    for _ in 0..2 {
        for (path, ..) in cases {
            f.get(path, &[]).await;
        }
    }
    for (path, expires, hits) in cases {
        assert_eq!(f.origin.hits(path), hits, "Expires: {expires}");
    }
}

// RFC 9111 5.1 (Age), 4.2.1 (invalid or duplicate freshness) and 1.2.2
// (delta-seconds): what each damaged value means is written down in
// crates/http-cache-semantics/CHANGES-VEIL.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_age_and_freshness_values() {
    let f = Fixture::new().await;
    let hour = ("cache-control", "max-age=3600");
    type Case = (&'static str, Vec<(&'static str, &'static str)>, usize);
    let cases: Vec<Case> = vec![
        // Age with a parameter is 7200: older than max-age, stale.
        ("/age-param", vec![hour, ("age", "7200;foo")], 2),
        ("/age-fraction", vec![hour, ("age", "7200.5")], 2),
        // Age without a leading digit is invalid and ignored: fresh.
        ("/age-negative", vec![hour, ("age", "-1")], 1),
        ("/age-text", vec![hour, ("age", "abc")], 1),
        // Too large a delta-seconds is 2^31, not 0.
        (
            "/max-age-huge",
            vec![("cache-control", "max-age=99999999999999999999")],
            1,
        ),
        // Quoted values are accepted (5.2).
        (
            "/max-age-quoted",
            vec![("cache-control", "max-age=\"3600\"")],
            1,
        ),
        // Two different max-age values: invalid, stale.
        (
            "/max-age-twice",
            vec![hour, ("cache-control", "max-age=1")],
            2,
        ),
        // max-age without a value is invalid: stale, Expires ignored.
        (
            "/max-age-empty",
            vec![
                ("cache-control", "max-age"),
                ("expires", "Thu, 01 Jan 2099 00:00:00 GMT"),
            ],
            2,
        ),
        ("/max-age-text", vec![("cache-control", "max-age=abc")], 2),
        (
            "/s-maxage-text",
            vec![("cache-control", "s-maxage=abc, max-age=3600")],
            2,
        ),
        // Two Expires fields: invalid, stale.
        (
            "/expires-twice",
            vec![
                ("expires", "Thu, 01 Jan 2099 00:00:00 GMT"),
                ("expires", "Thu, 01 Jan 2099 00:00:00 GMT"),
            ],
            2,
        ),
    ];
    for (path, headers, _) in &cases {
        f.origin.script(path, Script::ok("x", headers));
    }
    for _ in 0..2 {
        for (path, ..) in &cases {
            f.get(path, &[]).await;
        }
    }
    for (path, headers, hits) in &cases {
        assert_eq!(f.origin.hits(path), *hits, "{path}: {headers:?}");
    }
}

type Answer = (u16, Vec<(&'static str, String)>, &'static str);

/// An origin that computes each answer from the request's headers, and
/// counts the requests it gets.
async fn computed_origin(
    answer: impl Fn(&HeaderMap) -> Answer + Send + Sync + 'static,
) -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let count = Arc::new(AtomicUsize::new(0));
    let (answer, seen) = (Arc::new(answer), count.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (answer, seen) = (answer.clone(), seen.clone());
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        seen.fetch_add(1, Ordering::SeqCst);
                        let (status, headers, body) = answer(req.headers());
                        let mut resp =
                            hyper::Response::new(http_body_util::Full::new(Bytes::from(body)));
                        *resp.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
                        for (k, v) in headers {
                            resp.headers_mut()
                                .append(k, v.parse().expect("header value"));
                        }
                        async move { Ok::<_, std::convert::Infallible>(resp) }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, count)
}

// RFC 9111 4.3.4: when Veil revalidates on its own behalf and the 304 names
// another strong validator than the stored response's, no stored response
// is selected: the client (who asked nothing conditional) gets the full
// response, fetched again, never a bare 304.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmatched_304_is_fetched_in_full() {
    let (origin, count) = computed_origin(|req| {
        if req.contains_key("if-none-match") {
            (304, vec![("etag", "\"other\"".into())], "")
        } else {
            (
                200,
                vec![
                    ("etag", "\"stored\"".into()),
                    ("cache-control", "max-age=0".into()),
                ],
                "full body",
            )
        }
    })
    .await;
    let engine = start_engine(|_| {}).await;
    let url = format!("http://{origin}/r");
    let first = send(engine.local_addr(), Method::GET, &url, &[]).await;
    assert_eq!((first.status, first.text().as_str()), (200, "full body"));
    let second = send(engine.local_addr(), Method::GET, &url, &[]).await;
    assert_eq!(
        (second.status, second.text().as_str()),
        (200, "full body"),
        "{second:?}"
    );
    // The first fetch, the revalidation and the full fetch.
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 3);
}

// Collapsed forwarding with a leader whose client stops reading: the origin's
// body is read for the cache whatever the client does, so the request
// waiting for that fetch is answered from it (the origin is asked once),
// instead of being held until the collapse gives up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_does_not_hold_the_waiters() {
    const BIG: usize = 32 << 20;
    let f = Fixture::with(|c| c.cache.max_object_bytes = 64 << 20).await;
    f.origin
        .script("/big", Script::ok(vec![b'x'; BIG], FRESH).chunked());
    let url: hyper::Uri = f.origin.url("/big").parse().expect("url");
    // The leader: reads the head, then never the body, and stays connected.
    let stream = TcpStream::connect(f.engine.local_addr())
        .await
        .expect("proxy accepts");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = Request::get(url.clone())
        .header("host", url.authority().expect("authority").as_str())
        .body(Empty::<Bytes>::new())
        .expect("request");
    let stalled = sender.send_request(req).await.expect("head");
    assert_eq!(stalled.status(), 200);
    // The waiter (or, if the fill is already stored, a hit).
    let got = f.get("/big", &[]).await;
    assert_eq!((got.status, got.body.len()), (200, BIG));
    assert_eq!(f.origin.hits("/big"), 1, "answered from the leader's fetch");
    drop(stalled);
}

// The memory bound weighs what an entry really keeps: its stored heads as
// well as its body; and heads over 64 KiB are not stored at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_heads_are_weighed_and_capped() {
    let f = Fixture::new().await;
    let pad = "p".repeat(4000);
    let headers = |n: usize| {
        let mut h: Vec<(String, String)> = vec![("cache-control".into(), "max-age=60".into())];
        h.extend((0..n).map(|i| (format!("x-pad-{i}"), pad.clone())));
        h
    };
    let script = |n: usize| {
        let owned = headers(n);
        let borrowed: Vec<(&str, &str)> = owned
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        // 1 MiB of body: the memory tier settles its books at once after
        // that much, so its figures are exact.
        Script::ok(vec![b'b'; 1 << 20], &borrowed)
    };
    f.origin.script("/heavy-head", script(8));
    f.origin.script("/huge-head", script(40));
    for _ in 0..2 {
        f.get("/heavy-head", &[]).await;
        f.get("/huge-head", &[]).await;
    }
    assert_eq!(f.origin.hits("/heavy-head"), 1, "32 KiB of heads: stored");
    assert_eq!(
        f.origin.hits("/huge-head"),
        2,
        "160 KiB of heads: not stored"
    );
    assert!(stored(&f.engine, 1).await);
    let stats = f.engine.stats().cache;
    assert!(
        stats.memory_bytes >= (1 << 20) + 32_000,
        "heads weighed: {stats:?}"
    );
    assert!(stats.too_large >= 2, "{stats:?}");
}

/// An "upstream proxy" that answers every request itself with `body`,
/// cacheable for a minute: enough to tell which route a response came by.
async fn answering_upstream(
    body: &'static str,
) -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    computed_origin(move |_| (200, vec![("cache-control", "max-age=60".into())], body)).await
}

async fn route_case(share: bool) -> (Vec<String>, usize, usize, u64) {
    use std::sync::atomic::Ordering;
    let (a, a_hits) = answering_upstream("via A").await;
    let (b, b_hits) = answering_upstream("via B").await;
    let engine = start_engine(move |c| {
        c.mode = veil_engine::Mode::Proxy;
        c.upstreams = vec![veil_tests::peers::spec("a", &format!("http://{a}"), None)];
        c.cache.share_across_routes = share;
    })
    .await;
    let url = "http://cache-route.test/page";
    let mut seen = Vec::new();
    for _ in 0..2 {
        seen.push(
            send(engine.local_addr(), Method::GET, url, &[])
                .await
                .text(),
        );
    }
    engine
        .set_upstreams(vec![veil_tests::peers::spec(
            "b",
            &format!("http://{b}"),
            None,
        )])
        .expect("switch upstream");
    for _ in 0..2 {
        seen.push(
            send(engine.local_addr(), Method::GET, url, &[])
                .await
                .text(),
        );
    }
    let route_changes = engine.stats().cache.invalidations.route_change;
    (
        seen,
        a_hits.load(Ordering::SeqCst),
        b_hits.load(Ordering::SeqCst),
        route_changes,
    )
}

// RFC 9111 2 and 7 (a shared cache and its privacy): the cache is shared by
// every route, but by default a response that came through one upstream is
// not served once requests go through another; the new route's response
// replaces it. With sharing on, it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_routes_does_not_replay_the_old_exit() {
    let (seen, a, b, changes) = route_case(false).await;
    assert_eq!(seen, ["via A", "via A", "via B", "via B"]);
    assert_eq!((a, b), (1, 1));
    assert!(changes >= 1, "{changes}");
    let (seen, a, b, _) = route_case(true).await;
    assert_eq!(seen, ["via A", "via A", "via A", "via A"]);
    assert_eq!((a, b), (1, 0));
}

/// Sends `GET url` in absolute form over a raw connection to the proxy and
/// returns every byte of the answer (the connection closes after it).
async fn raw_get(proxy: SocketAddr, url: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(proxy).await.expect("proxy accepts");
    let host = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default();
    let req = format!("GET {url} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut out))
        .await
        .expect("answer within 20 s")
        .expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

// RFC 9110 15.2: a proxy forwards 1xx interim responses (here 103 Early
// Hints) to the client, ahead of the final response; RFC 9111 3: they are
// never stored, so a hit carries none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_hints_are_forwarded_and_never_stored() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = listener.local_addr().expect("addr");
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n\
                          HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 5\r\n\
                          Connection: close\r\n\r\nfinal",
                    )
                    .await;
            });
        }
    });
    let engine = start_engine(|_| {}).await;
    let url = format!("http://{origin}/hinted");
    let first = raw_get(engine.local_addr(), &url).await;
    let hint = first.find("HTTP/1.1 103 Early Hints\r\n");
    let fin = first.find("HTTP/1.1 200 OK\r\n");
    assert!(
        matches!((hint, fin), (Some(h), Some(f)) if h < f),
        "103 ahead of the 200: {first:?}"
    );
    assert!(
        first.contains("link: </style.css>; rel=preload; as=style\r\n"),
        "{first:?}"
    );
    assert!(first.ends_with("final"), "{first:?}");
    let second = raw_get(engine.local_addr(), &url).await;
    assert_eq!(served.load(Ordering::SeqCst), 1, "the 200 was stored");
    assert!(second.starts_with("HTTP/1.1 200 OK\r\n"), "{second:?}");
    assert!(!second.to_ascii_lowercase().contains("link:"), "{second:?}");
}

// The same when Veil asks the origin on its own behalf: the conditional
// request of a revalidation and the full request after a 304 that matched
// nothing pass the origin's 1xx on to the client waiting for them, ahead of
// the final response, and never store them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_hints_reach_the_client_when_veil_revalidates_or_refetches() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = listener.local_addr().expect("addr");
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte).await {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let answer: &[u8] = match n {
                    // Stored, to be revalidated by every later request.
                    1 => {
                        b"HTTP/1.1 200 OK\r\nCache-Control: no-cache\r\nETag: \"v1\"\r\n\
                           Content-Length: 5\r\nConnection: close\r\n\r\nfirst"
                    }
                    // The revalidation: still the same.
                    2 => {
                        b"HTTP/1.1 103 Early Hints\r\nLink: </reval.css>; rel=preload\r\n\r\n\
                           HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nConnection: close\r\n\r\n"
                    }
                    // A 304 that selects nothing stored: Veil asks again in full.
                    3 => {
                        b"HTTP/1.1 103 Early Hints\r\nLink: </reval.css>; rel=preload\r\n\r\n\
                           HTTP/1.1 304 Not Modified\r\nETag: \"v9\"\r\nConnection: close\r\n\r\n"
                    }
                    _ => {
                        b"HTTP/1.1 103 Early Hints\r\nLink: </refetch.css>; rel=preload\r\n\r\n\
                           HTTP/1.1 200 OK\r\nCache-Control: no-cache\r\nETag: \"v4\"\r\n\
                           Content-Length: 5\r\nConnection: close\r\n\r\nfresh"
                    }
                };
                let _ = stream.write_all(answer).await;
            });
        }
    });
    let engine = start_engine(|_| {}).await;
    let url = format!("http://{origin}/revalidated");
    let first = raw_get(engine.local_addr(), &url).await;
    assert!(first.ends_with("first"), "{first:?}");

    let revalidated = raw_get(engine.local_addr(), &url).await;
    assert_eq!(served.load(Ordering::SeqCst), 2);
    let hint = revalidated.find("HTTP/1.1 103 Early Hints\r\n");
    let fin = revalidated.find("HTTP/1.1 200 OK\r\n");
    assert!(
        matches!((hint, fin), (Some(h), Some(f)) if h < f),
        "103 ahead of the 200 served from the cache: {revalidated:?}"
    );
    assert!(revalidated.contains("</reval.css>"), "{revalidated:?}");
    assert!(revalidated.ends_with("first"), "{revalidated:?}");

    let refetched = raw_get(engine.local_addr(), &url).await;
    assert_eq!(served.load(Ordering::SeqCst), 4);
    let hint = refetched.find("</refetch.css>");
    let fin = refetched.find("HTTP/1.1 200 OK\r\n");
    assert!(
        matches!((hint, fin), (Some(h), Some(f)) if h < f),
        "the refetch's 103 ahead of its 200: {refetched:?}"
    );
    assert!(refetched.ends_with("fresh"), "{refetched:?}");
    // Never stored: the next revalidation's answer carries only its own.
    assert!(
        !refetched.contains("</reval.css>\r\n\r\nHTTP/1.1 200"),
        "{refetched:?}"
    );
}

// RFC 9111 4.4, run in many interleavings: in each round a POST to /a races
// GETs of /a, /b and /c. Whatever the order, /b and /c end up stored (a POST
// elsewhere never stops their store), and /a is never served as it was
// before the POST (a fill the POST overtook is not kept). The origin tags
// /a with the number of POSTs it has seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidation_races_agree_in_every_interleaving() {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = listener.local_addr().expect("addr");
    // Per path: POSTs seen and GETs served.
    let state: Arc<Mutex<HashMap<String, (u32, u32)>>> = Arc::default();
    let shared = state.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let state = shared.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                        let path = req.uri().path().to_owned();
                        let body = {
                            let mut map = state.lock().unwrap_or_else(|e| e.into_inner());
                            let entry = map.entry(path).or_default();
                            if req.method() == Method::POST {
                                entry.0 += 1;
                            } else {
                                entry.1 += 1;
                            }
                            format!("v{}", entry.0)
                        };
                        let mut resp =
                            hyper::Response::new(http_body_util::Full::new(Bytes::from(body)));
                        resp.headers_mut()
                            .insert("cache-control", "max-age=600".parse().expect("value"));
                        async move { Ok::<_, std::convert::Infallible>(resp) }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let engine = start_engine(|_| {}).await;
    let proxy = engine.local_addr();
    let gets = |state: &Arc<Mutex<HashMap<String, (u32, u32)>>>, path: &str| {
        state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(path)
            .map_or(0, |e| e.1)
    };
    for round in 0..30 {
        let url = |p: &str| format!("http://{origin}/r{round}/{p}");
        let stored_before = engine.stats().cache.stored;
        let mut tasks = Vec::new();
        // Vary the order the requests are started in, round by round.
        let mut order = vec!["a", "b", "c", "post"];
        order.rotate_left(round % 4);
        if round % 2 == 1 {
            order.reverse();
        }
        for what in order {
            let (method, path) = match what {
                "post" => (Method::POST, url("a")),
                p => (Method::GET, url(p)),
            };
            tasks.push(tokio::spawn(async move {
                send(proxy, method, &path, &[]).await
            }));
        }
        for task in tasks {
            assert_eq!(task.await.expect("task").status, 200);
        }
        // /b and /c are stored in every interleaving (a response is in the
        // cache by the time its client has all of it).
        let stats = engine.stats().cache;
        assert!(
            stats.stored >= stored_before + 2,
            "round {round}: {stats:?}"
        );
        for p in ["b", "c"] {
            let got = send(proxy, Method::GET, &url(p), &[]).await;
            assert_eq!(got.text(), "v0", "round {round} /{p}");
            assert_eq!(
                gets(&state, &format!("/r{round}/{p}")),
                1,
                "round {round}: /{p} a hit"
            );
        }
        // /a is what the origin said after the POST, every time.
        for _ in 0..2 {
            let got = send(proxy, Method::GET, &url("a"), &[]).await;
            assert_eq!(got.text(), "v1", "round {round}: /a from before the POST");
        }
    }
}

// RFC 9111 4.4: a successful unsafe method also invalidates the URLs in its
// response's `Location` and `Content-Location` on the same origin, never
// another origin's; each invalidation is counted by cause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn location_targets_are_invalidated_and_counted() {
    let f = Fixture::new().await;
    f.origin.script("/target", Script::ok("t", FRESH));
    f.origin.script("/described", Script::ok("d", FRESH));
    f.origin.script(
        "/form",
        Script::ok(
            "done",
            &[
                ("location", "/target"),
                ("content-location", &f.origin.url("/described")),
            ],
        ),
    );
    f.origin.script(
        "/elsewhere",
        Script::ok("done", &[("location", "http://other.test/target")]),
    );
    for path in ["/target", "/described", "/target", "/described"] {
        f.get(path, &[]).await;
    }
    assert_eq!(
        (f.origin.hits("/target"), f.origin.hits("/described")),
        (1, 1)
    );
    assert_eq!(f.send(Method::POST, "/form", &[]).await.status, 200);
    f.get("/target", &[]).await;
    f.get("/described", &[]).await;
    assert_eq!(
        (f.origin.hits("/target"), f.origin.hits("/described")),
        (2, 2)
    );
    f.send(Method::POST, "/elsewhere", &[]).await;
    let inv = f.engine.stats().cache.invalidations;
    assert_eq!((inv.unsafe_method, inv.location), (2, 2), "{inv:?}");
}
