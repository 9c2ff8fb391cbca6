//! The Windows calls the backend needs, behind a trait so that everything
//! else (which values, in which notation, the connection blob, the
//! read-back check) runs and is tested on any OS against [`FakeRegistry`].

use super::value::RegValue;

/// The two keys under `HKEY_CURRENT_USER` that hold WinINet's setting,
/// and the per-user `Run` key that holds the login-time repair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    InternetSettings,
    Connections,
    #[cfg_attr(not(windows), allow(dead_code))]
    Run,
}

impl Key {
    #[cfg_attr(not(windows), allow(dead_code))]
    pub fn path(self) -> &'static str {
        match self {
            Key::InternetSettings => r"Software\Microsoft\Windows\CurrentVersion\Internet Settings",
            Key::Connections => {
                r"Software\Microsoft\Windows\CurrentVersion\Internet Settings\Connections"
            }
            Key::Run => r"Software\Microsoft\Windows\CurrentVersion\Run",
        }
    }
}

/// WinHTTP's machine-wide default (`netsh winhttp show proxy`), which
/// services use instead of the user's setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WinHttp {
    Direct,
    Proxy {
        server: String,
        bypass: Option<String>,
    },
}

#[derive(Debug, thiserror::Error)]
#[error("{action} HKCU\\{path}\\{name}: {detail}")]
pub struct RegistryError {
    pub action: &'static str,
    pub path: &'static str,
    pub name: String,
    pub detail: String,
}

/// The user's registry and the two WinINet/WinHTTP calls around it.
pub trait Registry: Send + Sync {
    /// A value, or `None` when it (or its key) does not exist.
    fn get(&self, key: Key, name: &str) -> Result<Option<RegValue>, RegistryError>;
    /// Stores a value, creating the key when needed.
    fn set(&self, key: Key, name: &str, value: &RegValue) -> Result<(), RegistryError>;
    /// Removes a value; one that is not there is not an error.
    fn delete(&self, key: Key, name: &str) -> Result<(), RegistryError>;
    /// WinHTTP's machine-wide setting; only ever read.
    fn winhttp(&self) -> Result<WinHttp, String>;
    /// Tells running programs that use WinINet to read the setting again.
    fn notify(&self) -> Result<(), String>;
}

#[cfg(test)]
pub use fake::FakeRegistry;

#[cfg(test)]
mod fake {
    use std::collections::BTreeMap;
    use std::sync::{Mutex, MutexGuard, PoisonError};

    use super::*;

    /// An in-memory registry. `stuck` names values whose writes are
    /// accepted and dropped, as a policy-locked value would be.
    #[derive(Default)]
    pub struct FakeRegistry {
        values: Mutex<BTreeMap<(Key, String), RegValue>>,
        pub winhttp: Mutex<Option<WinHttp>>,
        pub stuck: Mutex<Vec<String>>,
        pub notified: Mutex<u32>,
    }

    fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }

    impl FakeRegistry {
        pub fn put(&self, key: Key, name: &str, value: RegValue) {
            lock(&self.values).insert((key, name.to_owned()), value);
        }

        pub fn value(&self, key: Key, name: &str) -> Option<RegValue> {
            lock(&self.values).get(&(key, name.to_owned())).cloned()
        }

        pub fn all(&self) -> BTreeMap<(Key, String), RegValue> {
            lock(&self.values).clone()
        }

        pub fn notifications(&self) -> u32 {
            *lock(&self.notified)
        }

        fn is_stuck(&self, name: &str) -> bool {
            lock(&self.stuck).iter().any(|s| s == name)
        }
    }

    impl Registry for FakeRegistry {
        fn get(&self, key: Key, name: &str) -> Result<Option<RegValue>, RegistryError> {
            Ok(self.value(key, name))
        }

        fn set(&self, key: Key, name: &str, value: &RegValue) -> Result<(), RegistryError> {
            if !self.is_stuck(name) {
                // Stored as the real registry would: type and bytes.
                let (kind, data) = value.to_raw();
                self.put(key, name, RegValue::from_raw(kind, data));
            }
            Ok(())
        }

        fn delete(&self, key: Key, name: &str) -> Result<(), RegistryError> {
            if !self.is_stuck(name) {
                lock(&self.values).remove(&(key, name.to_owned()));
            }
            Ok(())
        }

        fn winhttp(&self) -> Result<WinHttp, String> {
            Ok(lock(&self.winhttp).clone().unwrap_or(WinHttp::Direct))
        }

        fn notify(&self) -> Result<(), String> {
            *lock(&self.notified) += 1;
            Ok(())
        }
    }
}
