//! `DefaultConnectionSettings`, the binary value under `Internet
//! Settings\Connections` where WinINet keeps the LAN connection's proxy
//! setting, including the two that have no plain value of their own: the
//! auto-detect (WPAD) switch and which of the modes are on.
//!
//! Layout (all little-endian; Wine's inetcpl and the Windows SDK's
//! `INTERNET_PER_CONN_*` options describe the same fields):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | layout version (0x46 on current Windows) |
//! | 4 | 4 | change counter, moved on by every write |
//! | 8 | 4 | flags: 0x01 direct, 0x02 proxy server, 0x04 PAC URL, 0x08 auto-detect |
//! | 12 | 4 + n | proxy server string (8-bit, not NUL-terminated) |
//! | .. | 4 + n | bypass list |
//! | .. | 4 + n | PAC URL |
//! | .. | rest | further fields (last detection results); kept as they are |
//!
//! Only the flags and the three strings are changed; whatever follows them
//! is written back untouched.

pub const FLAG_DIRECT: u32 = 0x01;
pub const FLAG_PROXY: u32 = 0x02;
pub const FLAG_AUTO_PROXY_URL: u32 = 0x04;
pub const FLAG_AUTO_DETECT: u32 = 0x08;
/// The bits above; any others are kept as they are.
const MODE_BITS: u32 = FLAG_DIRECT | FLAG_PROXY | FLAG_AUTO_PROXY_URL | FLAG_AUTO_DETECT;

/// The version Windows 7 to 11 write, used when Veil creates the value.
const VERSION: u32 = 0x46;
/// What follows the strings in a value Windows creates: zeroed fields.
const TRAILER: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    pub version: u32,
    pub counter: u32,
    pub flags: u32,
    pub proxy: Vec<u8>,
    pub bypass: Vec<u8>,
    pub pac_url: Vec<u8>,
    /// Everything after the PAC URL, byte for byte.
    pub rest: Vec<u8>,
}

impl ConnectionSettings {
    /// A value as Windows creates it for a fresh account: direct.
    pub fn new() -> Self {
        Self {
            version: VERSION,
            counter: 0,
            flags: FLAG_DIRECT,
            proxy: Vec::new(),
            bypass: Vec::new(),
            pac_url: Vec::new(),
            rest: vec![0; TRAILER],
        }
    }

    /// The fields of a stored value; `None` when it is too short or a
    /// length points past its end (a layout Veil does not know).
    pub fn parse(data: &[u8]) -> Option<Self> {
        let mut at = 0;
        let version = take_u32(data, &mut at)?;
        let counter = take_u32(data, &mut at)?;
        let flags = take_u32(data, &mut at)?;
        let proxy = take_string(data, &mut at)?;
        let bypass = take_string(data, &mut at)?;
        let pac_url = take_string(data, &mut at)?;
        Some(Self {
            version,
            counter,
            flags,
            proxy,
            bypass,
            pac_url,
            rest: data[at..].to_vec(),
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(24 + self.proxy.len() + self.bypass.len() + self.rest.len());
        for n in [self.version, self.counter, self.flags] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        for s in [&self.proxy, &self.bypass, &self.pac_url] {
            // A string longer than 4 GiB cannot come from a registry value.
            out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_le_bytes());
            out.extend_from_slice(s);
        }
        out.extend_from_slice(&self.rest);
        out
    }

    pub fn auto_detect(&self) -> bool {
        self.flags & FLAG_AUTO_DETECT != 0
    }

    /// Sets the mode bits, keeping any others.
    pub fn set_modes(&mut self, modes: u32) {
        self.flags = (self.flags & !MODE_BITS) | (modes & MODE_BITS);
    }

    pub fn modes(&self) -> u32 {
        self.flags & MODE_BITS
    }

    /// The same value apart from the change counter.
    pub fn same_settings(&self, other: &Self) -> bool {
        Self {
            counter: other.counter,
            ..self.clone()
        } == *other
    }
}

fn take_u32(data: &[u8], at: &mut usize) -> Option<u32> {
    let bytes = data.get(*at..at.checked_add(4)?)?;
    *at += 4;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

fn take_string(data: &[u8], at: &mut usize) -> Option<Vec<u8>> {
    let len = usize::try_from(take_u32(data, at)?).ok()?;
    let bytes = data.get(*at..at.checked_add(len)?)?;
    *at += len;
    Some(bytes.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value as Windows 10 writes it for "use a proxy server" plus
    /// "automatically detect settings".
    fn sample() -> Vec<u8> {
        let mut v = vec![0x46, 0, 0, 0, 0x2a, 0, 0, 0, 0x0b, 0, 0, 0];
        v.extend_from_slice(&[14, 0, 0, 0]);
        v.extend_from_slice(b"proxy.lan:3128");
        v.extend_from_slice(&[7, 0, 0, 0]);
        v.extend_from_slice(b"<local>");
        v.extend_from_slice(&[0, 0, 0, 0]);
        v.extend_from_slice(&[1, 0, 0, 0, 0xc0, 0xa8, 0x01, 0x02]);
        v.extend_from_slice(&[0; 24]);
        v
    }

    #[test]
    fn fields_are_read_and_everything_else_is_kept() {
        let parsed = ConnectionSettings::parse(&sample()).expect("parses");
        assert_eq!(parsed.version, 0x46);
        assert_eq!(parsed.counter, 0x2a);
        assert_eq!(parsed.modes(), FLAG_DIRECT | FLAG_PROXY | FLAG_AUTO_DETECT);
        assert!(parsed.auto_detect());
        assert_eq!(parsed.proxy, b"proxy.lan:3128");
        assert_eq!(parsed.bypass, b"<local>");
        assert!(parsed.pac_url.is_empty());
        assert_eq!(parsed.rest.len(), 32);
        assert_eq!(parsed.to_bytes(), sample());
    }

    #[test]
    fn mode_bits_change_and_other_bits_stay() {
        let mut parsed = ConnectionSettings::parse(&sample()).expect("parses");
        parsed.flags |= 0x100;
        parsed.set_modes(FLAG_DIRECT | FLAG_PROXY);
        assert_eq!(parsed.flags, 0x103);
        assert!(!parsed.auto_detect());
    }

    #[test]
    fn a_value_that_does_not_fit_the_layout_is_not_parsed() {
        assert_eq!(ConnectionSettings::parse(&[0x46, 0, 0]), None);
        let mut v = sample();
        v.truncate(20);
        assert_eq!(ConnectionSettings::parse(&v), None);
        let mut v = sample();
        v[12] = 0xff;
        assert_eq!(ConnectionSettings::parse(&v), None);
        let fresh = ConnectionSettings::new();
        assert_eq!(ConnectionSettings::parse(&fresh.to_bytes()), Some(fresh));
    }

    #[test]
    fn the_counter_does_not_make_a_difference() {
        let a = ConnectionSettings::parse(&sample()).expect("parses");
        let mut b = a.clone();
        b.counter += 1;
        assert!(a.same_settings(&b));
        b.pac_url = b"http://wpad/wpad.dat".to_vec();
        assert!(!a.same_settings(&b));
    }
}
