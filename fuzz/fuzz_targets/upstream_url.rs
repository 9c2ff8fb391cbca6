//! The upstream proxy URL parser (`http://`, `https://`, `socks5://`).
//!
//! Invariants: a URL that parses prints as a URL that parses to the same
//! value and prints the same (parse -> display -> parse); an error never
//! repeats a password typed into the URL by mistake.

#![no_main]

use libfuzzer_sys::fuzz_target;
use veil_engine::{ProxyUrl, ProxyUrlError};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match text.parse::<ProxyUrl>() {
        Ok(url) => {
            let shown = url.to_string();
            let again: ProxyUrl = shown
                .parse()
                .unwrap_or_else(|e| panic!("{text:?} printed as {shown:?}, which fails: {e}"));
            assert_eq!(url, again, "{text:?} printed as {shown:?}");
            assert_eq!(shown, again.to_string(), "printing is not stable");
            assert!(!url.host.is_empty());
            assert_ne!(url.port, 0);
            if let Some(user) = &url.username {
                assert!(!user.contains(':'), "a password kept in the user name");
            }
        }
        Err(e) => {
            if let Some(secret) = password_in(text) {
                let message = e.to_string();
                assert!(
                    !message.contains(secret),
                    "the error for {text:?} shows the password: {message}"
                );
            }
        }
    }
});

/// The password in the URL's userinfo (after its first `:`, or `%3A`),
/// when it is distinctive enough to look for in a message: at least 8
/// alphanumeric bytes, found once in the URL and in no error template.
fn password_in(url: &str) -> Option<&str> {
    let at = url.rfind('@')?;
    let start = url[..at].find("://").map_or(0, |i| i + 3);
    let userinfo = &url[start..at];
    let lower = userinfo.to_ascii_lowercase();
    let secret = match (userinfo.find(':'), lower.find("%3a")) {
        (Some(c), Some(p)) if p < c => &userinfo[p + 3..],
        (Some(c), _) => &userinfo[c + 1..],
        (None, Some(p)) => &userinfo[p + 3..],
        (None, None) => return None,
    };
    let secret = secret.split(|c: char| !c.is_ascii_alphanumeric()).next()?;
    let templates: String = [
        ProxyUrlError::Scheme(String::new()),
        ProxyUrlError::PasswordInUrl(String::new()),
        ProxyUrlError::NoHost(String::new()),
        ProxyUrlError::BadPort(String::new()),
        ProxyUrlError::Extra(String::new()),
        ProxyUrlError::UserTooLong(String::new()),
    ]
    .iter()
    .map(|e| e.to_string().to_ascii_lowercase())
    .collect();
    // Counted in the escaped form too: errors show the URL with `{:?}`,
    // where a `\0` before the user name can spell the password again.
    (secret.len() >= 8
        && url.matches(secret).count() == 1
        && format!("{url:?}").matches(secret).count() == 1
        && !templates.contains(&secret.to_ascii_lowercase()))
    .then_some(secret)
}
