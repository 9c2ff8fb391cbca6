//! A registry value as it is stored (type and data), and the text it has in
//! [`Settings`](super::super::Settings) so that the guard file keeps it
//! exactly.
//!
//! A value of the type Veil expects for its name reads naturally (`1` for
//! `ProxyEnable`, the plain text of `ProxyServer`, hex for the connection
//! blob). Anything else (another type, a string without its terminating NUL,
//! bytes that are not UTF-16) is written with a `reg:` tag so that it comes
//! back as the same type and the same bytes.

use std::fmt::Write as _;

/// Registry value types (winnt.h), the ones Veil names.
pub const REG_SZ: u32 = 1;
pub const REG_EXPAND_SZ: u32 = 2;
pub const REG_BINARY: u32 = 3;
pub const REG_DWORD: u32 = 4;

/// Marks a value whose type is not the one expected for its name.
const TAG: &str = "reg:";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegValue {
    Dword(u32),
    Sz(String),
    ExpandSz(String),
    Binary(Vec<u8>),
    /// Any other type, or a string whose bytes a `String` would not give
    /// back exactly; kept as it was stored.
    Raw {
        kind: u32,
        data: Vec<u8>,
    },
}

/// The type a value normally has, which decides its plain text form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    Dword,
    Sz,
    Binary,
}

impl RegValue {
    /// The value for a type and the bytes the registry holds.
    pub fn from_raw(kind: u32, data: Vec<u8>) -> Self {
        match kind {
            REG_DWORD => match <[u8; 4]>::try_from(data.as_slice()) {
                Ok(bytes) => RegValue::Dword(u32::from_le_bytes(bytes)),
                Err(_) => RegValue::Raw { kind, data },
            },
            REG_SZ | REG_EXPAND_SZ => match utf16_string(&data) {
                Some(s) if kind == REG_SZ => RegValue::Sz(s),
                Some(s) => RegValue::ExpandSz(s),
                None => RegValue::Raw { kind, data },
            },
            REG_BINARY => RegValue::Binary(data),
            _ => RegValue::Raw { kind, data },
        }
    }

    /// The type and bytes to store: strings as UTF-16 with one NUL.
    pub fn to_raw(&self) -> (u32, Vec<u8>) {
        let utf16 = |s: &str| {
            s.encode_utf16()
                .chain(std::iter::once(0))
                .flat_map(u16::to_le_bytes)
                .collect()
        };
        match self {
            RegValue::Dword(n) => (REG_DWORD, n.to_le_bytes().to_vec()),
            RegValue::Sz(s) => (REG_SZ, utf16(s)),
            RegValue::ExpandSz(s) => (REG_EXPAND_SZ, utf16(s)),
            RegValue::Binary(b) => (REG_BINARY, b.clone()),
            RegValue::Raw { kind, data } => (*kind, data.clone()),
        }
    }

    /// The text saved in the guard file.
    pub fn to_text(&self, expected: Expected) -> String {
        match (self, expected) {
            (RegValue::Dword(n), Expected::Dword) => n.to_string(),
            (RegValue::Sz(s), Expected::Sz) if !s.starts_with(TAG) => s.clone(),
            (RegValue::Binary(b), Expected::Binary) => hex(b),
            (RegValue::Dword(n), _) => format!("{TAG}dword:{n}"),
            (RegValue::Sz(s), _) => format!("{TAG}sz:{s}"),
            (RegValue::ExpandSz(s), _) => format!("{TAG}expand_sz:{s}"),
            (RegValue::Binary(b), _) => format!("{TAG}binary:{}", hex(b)),
            (RegValue::Raw { kind, data }, _) => format!("{TAG}{kind}:{}", hex(data)),
        }
    }

    /// The value [`to_text`](Self::to_text) wrote.
    pub fn from_text(text: &str, expected: Expected) -> Result<Self, String> {
        let Some(tagged) = text.strip_prefix(TAG) else {
            return match expected {
                Expected::Dword => text
                    .parse()
                    .map(RegValue::Dword)
                    .map_err(|_| format!("{text:?} is not a DWORD")),
                Expected::Sz => Ok(RegValue::Sz(text.to_owned())),
                Expected::Binary => unhex(text).map(RegValue::Binary),
            };
        };
        let (kind, data) = tagged
            .split_once(':')
            .ok_or_else(|| format!("{text:?} has no value type"))?;
        match kind {
            "dword" => data
                .parse()
                .map(RegValue::Dword)
                .map_err(|_| format!("{text:?} is not a DWORD")),
            "sz" => Ok(RegValue::Sz(data.to_owned())),
            "expand_sz" => Ok(RegValue::ExpandSz(data.to_owned())),
            "binary" => unhex(data).map(RegValue::Binary),
            number => Ok(RegValue::Raw {
                kind: number
                    .parse()
                    .map_err(|_| format!("{text:?} names no registry type"))?,
                data: unhex(data)?,
            }),
        }
    }

    /// The string of a REG_SZ (or REG_EXPAND_SZ) value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            RegValue::Sz(s) | RegValue::ExpandSz(s) => Some(s),
            _ => None,
        }
    }
}

/// UTF-16 text with exactly one terminating NUL, as `RegSetValueEx` stores
/// a string; `None` for anything that would not come back byte for byte.
fn utf16_string(data: &[u8]) -> Option<String> {
    if data.len() % 2 != 0 {
        return None;
    }
    let units: Vec<u16> = data
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let (last, text) = units.split_last()?;
    if *last != 0 || text.contains(&0) {
        return None;
    }
    String::from_utf16(text).ok()
}

pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

pub fn unhex(text: &str) -> Result<Vec<u8>, String> {
    if text.len() % 2 != 0 || !text.is_ascii() {
        return Err(format!("{text:?} is not hex bytes"));
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&text[i..i + 2], 16)
                .map_err(|_| format!("{text:?} is not hex bytes"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_for_the_expected_type_and_tags_otherwise() {
        let cases = [
            (RegValue::Dword(1), Expected::Dword, "1"),
            (
                RegValue::Sz("http=a:1;https=[::1]:2".into()),
                Expected::Sz,
                "http=a:1;https=[::1]:2",
            ),
            (
                RegValue::Binary(vec![0x46, 0, 1]),
                Expected::Binary,
                "460001",
            ),
            (RegValue::Sz("1".into()), Expected::Dword, "reg:sz:1"),
            (RegValue::Sz("reg:x".into()), Expected::Sz, "reg:sz:reg:x"),
            (
                RegValue::ExpandSz("%USERPROFILE%\\p.pac".into()),
                Expected::Sz,
                "reg:expand_sz:%USERPROFILE%\\p.pac",
            ),
            (RegValue::Dword(7), Expected::Sz, "reg:dword:7"),
            (
                RegValue::Raw {
                    kind: 11,
                    data: vec![1, 2],
                },
                Expected::Dword,
                "reg:11:0102",
            ),
        ];
        for (value, expected, text) in cases {
            assert_eq!(value.to_text(expected), text);
            assert_eq!(RegValue::from_text(text, expected), Ok(value));
        }
        assert!(RegValue::from_text("yes", Expected::Dword).is_err());
        assert!(RegValue::from_text("4", Expected::Binary).is_err());
    }

    #[test]
    fn stored_bytes_come_back_exactly() {
        let stored = [
            (REG_DWORD, vec![1, 0, 0, 0]),
            (REG_SZ, vec![b'a', 0, b':', 0, b'1', 0, 0, 0]),
            (REG_SZ, vec![]),
            // No terminating NUL, an odd length, a lone surrogate: kept raw.
            (REG_SZ, vec![b'a', 0]),
            (REG_SZ, vec![b'a', 0, 0]),
            (REG_SZ, vec![0x00, 0xd8, 0, 0]),
            (REG_DWORD, vec![1, 0]),
            (REG_BINARY, vec![0x46, 0, 0, 0]),
            (7, vec![b'x', 0, 0, 0, 0, 0]),
        ];
        for (kind, data) in stored {
            let value = RegValue::from_raw(kind, data.clone());
            assert_eq!(value.to_raw(), (kind, data.clone()), "{value:?}");
            for expected in [Expected::Dword, Expected::Sz, Expected::Binary] {
                let text = value.to_text(expected);
                assert_eq!(RegValue::from_text(&text, expected).as_ref(), Ok(&value));
            }
        }
    }
}
