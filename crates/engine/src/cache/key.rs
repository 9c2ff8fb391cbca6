//! Cache keys. A stored response is found by its absolute URI; when the
//! response named request headers in `Vary`, the values of those headers in
//! the request join the key, so each variant is an entry of its own
//! (RFC 9111, section 4.1). Values are normalised first (case, spaces around
//! commas) so `en-US, fr` and `en-us,fr` share one entry.

use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use sha2::{Digest, Sha256};

/// The salt of the secret headers' digests (see [`SECRET`]).
pub type Salt = [u8; 32];

/// A new random salt; all zeros only when the OS has no randomness to give,
/// which leaves the digests unsalted rather than the cache unusable.
pub fn random_salt() -> Salt {
    let mut salt = [0u8; 32];
    if let Err(e) = getrandom::fill(&mut salt) {
        tracing::warn!("no randomness for the HTTP cache's salt: {e}");
    }
    salt
}

/// The key of every variant of one URI; also the unit of purging and of
/// collapsed forwarding.
pub fn primary(parts: &Parts) -> String {
    parts.uri.to_string()
}

/// The key of the variant of `primary` that `headers` select, given the
/// header names of the stored response's `Vary`.
pub fn variant(primary: &str, vary: &[HeaderName], headers: &HeaderMap) -> String {
    if vary.is_empty() {
        return primary.to_owned();
    }
    let mut key = String::with_capacity(primary.len() + 64);
    key.push_str(primary);
    for name in vary {
        key.push('\n');
        key.push_str(name.as_str());
        key.push(':');
        for value in headers.get_all(name) {
            key.push_str(&normalise(value));
            key.push(';');
        }
    }
    key
}

/// True when `key` belongs to the URI whose primary key is `primary`.
pub fn belongs_to(key: &str, primary: &str) -> bool {
    key.strip_prefix(primary)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('\n'))
}

/// Header names listed in a response's `Vary`, lowercased and deduplicated.
/// `None` for `Vary: *`, which no request can match.
pub fn vary_names(headers: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut names: Vec<HeaderName> = Vec::new();
    for value in headers.get_all(http::header::VARY) {
        let Ok(value) = value.to_str() else {
            return None;
        };
        for token in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            if token == "*" {
                return None;
            }
            let name = HeaderName::from_bytes(token.to_ascii_lowercase().as_bytes()).ok()?;
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    Some(names)
}

/// Request headers whose values are compared after normalising; the cache
/// policy sees the normalised values too, so its `Vary` check agrees with the
/// key.
const NORMALISED: &[HeaderName] = &[
    http::header::ACCEPT,
    http::header::ACCEPT_CHARSET,
    http::header::ACCEPT_ENCODING,
    http::header::ACCEPT_LANGUAGE,
];

fn normalise(value: &HeaderValue) -> String {
    let text = String::from_utf8_lossy(value.as_bytes()).to_ascii_lowercase();
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(",")
}

/// What the cache-semantics crate is given, put the way RFC 9111 reads it
/// (the crate compares directive names case-sensitively and parses `Age`
/// as one integer):
/// - `Cache-Control` and `Pragma` directive names lower-cased (5.2: they are
///   case-insensitive), values kept as they are; every field line joined,
///   so each decision sees the combined value;
/// - `Age` given as a list (`7200, 0`) is its first member (5.1).
pub fn normalise_directives(headers: &mut http::HeaderMap) {
    for name in [http::header::CACHE_CONTROL, http::header::PRAGMA] {
        if !headers.contains_key(&name) {
            continue;
        }
        let joined = headers
            .get_all(&name)
            .iter()
            .flat_map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split(',')
                    .map(|d| d.trim().to_owned())
                    .collect::<Vec<_>>()
            })
            .filter(|d| !d.is_empty())
            .map(|d| match d.split_once('=') {
                Some((k, v)) => format!("{}={}", k.trim().to_ascii_lowercase(), v.trim()),
                None => d.to_ascii_lowercase(),
            })
            .collect::<Vec<_>>()
            .join(", ");
        if let Ok(value) = HeaderValue::from_str(&joined) {
            headers.insert(name, value);
        }
    }
    if let Some(first) = headers
        .get(http::header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_owned())
        && let Ok(value) = HeaderValue::from_str(&first)
    {
        headers.insert(http::header::AGE, value);
    }
}

/// `headers` with every value in an allocation of its own. Values parsed by
/// hyper are slices of the connection's read buffer: a stored entry keeping
/// them would keep that whole buffer (often twice the head, plus body bytes)
/// alive, unseen by the memory tier's weighing.
pub fn compact(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if let Ok(mut copy) = HeaderValue::from_bytes(value.as_bytes()) {
            copy.set_sensitive(value.is_sensitive());
            out.append(name.clone(), copy);
        }
    }
    out
}

/// Request headers that carry a user's secrets. The policy keeps the request
/// headers of every stored response (for `Vary`), and the disk tier writes
/// them out; these are kept only as a SHA-256 of a per-installation salt
/// and their values, enough to tell one user's value from another's and to
/// see that one is present, and useless for checking a guessed value
/// against a cache directory copied elsewhere.
const SECRET: &[HeaderName] = &[http::header::AUTHORIZATION, http::header::COOKIE];

/// The request as the cache policy should see it: a `HEAD` is answered from
/// the stored `GET` (RFC 9110, section 9.3.2), content-negotiation headers
/// are normalised, and secrets are replaced by their digest.
pub fn policy_view(parts: &Parts, salt: &Salt) -> Parts {
    let mut req = http::Request::new(());
    *req.method_mut() = if parts.method == Method::HEAD {
        Method::GET
    } else {
        parts.method.clone()
    };
    *req.uri_mut() = parts.uri.clone();
    *req.version_mut() = parts.version;
    let mut headers = compact(&parts.headers);
    normalise_directives(&mut headers);
    for name in NORMALISED {
        if headers.contains_key(name) {
            let joined = headers
                .get_all(name)
                .iter()
                .map(normalise)
                .collect::<Vec<_>>()
                .join(",");
            if let Ok(value) = HeaderValue::from_str(&joined) {
                headers.insert(name.clone(), value);
            }
        }
    }
    for name in SECRET {
        if headers.contains_key(name) {
            let mut digest = Sha256::new();
            digest.update(salt);
            for value in headers.get_all(name) {
                digest.update(value.as_bytes());
                digest.update(b"\n");
            }
            let hex: String = digest
                .finalize()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            if let Ok(value) = HeaderValue::from_str(&format!("sha256:{hex}")) {
                headers.insert(name.clone(), value);
            }
        }
    }
    *req.headers_mut() = headers;
    req.into_parts().0
}

/// Puts the client's real secret headers back into a request built from the
/// policy view (a revalidation) before it goes to the origin.
pub fn restore_secrets(request: &mut Parts, original: &Parts) {
    for name in SECRET {
        request.headers.remove(name);
        for value in original.headers.get_all(name) {
            request.headers.append(name.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut req = http::Request::get("http://example.test/a?b=1");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(()).expect("request").into_parts().0
    }

    #[test]
    fn variants_differ_by_the_varied_header_only() {
        let vary = vec![http::header::ACCEPT_LANGUAGE];
        let p = primary(&parts(&[]));
        let en = variant(
            &p,
            &vary,
            &parts(&[("accept-language", "en-US, fr")]).headers,
        );
        let en2 = variant(
            &p,
            &vary,
            &parts(&[("accept-language", "en-us,fr")]).headers,
        );
        let de = variant(&p, &vary, &parts(&[("accept-language", "de")]).headers);
        assert_eq!(en, en2);
        assert_ne!(en, de);
        assert!(belongs_to(&en, &p) && belongs_to(&p, &p));
        assert!(!belongs_to("http://example.test/a?b=10", &p));
    }

    #[test]
    fn vary_star_matches_nothing() {
        let mut h = HeaderMap::new();
        h.insert("vary", HeaderValue::from_static("Accept-Encoding, *"));
        assert_eq!(vary_names(&h), None);
        h.insert(
            "vary",
            HeaderValue::from_static("Accept-Encoding, accept-language"),
        );
        assert_eq!(
            vary_names(&h),
            Some(vec![
                http::header::ACCEPT_ENCODING,
                http::header::ACCEPT_LANGUAGE
            ])
        );
    }
}

#[cfg(test)]
mod salt_tests {
    use super::*;

    // The digest of a secret depends on the installation's salt: the same
    // token gives another digest elsewhere, and none is the plain SHA-256.
    #[test]
    fn secret_digests_are_salted() {
        let req = http::Request::get("http://example.test/")
            .header("authorization", "Bearer token")
            .body(())
            .expect("request")
            .into_parts()
            .0;
        let digest = |salt: &Salt| {
            policy_view(&req, salt)
                .headers
                .get("authorization")
                .expect("digest kept")
                .clone()
        };
        let (a, b) = (random_salt(), random_salt());
        assert_eq!(digest(&a), digest(&a));
        assert_ne!(digest(&a), digest(&b));
        let plain: String = Sha256::digest(b"Bearer token\n")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_ne!(
            digest(&a).to_str().ok(),
            Some(format!("sha256:{plain}").as_str())
        );
    }
}
