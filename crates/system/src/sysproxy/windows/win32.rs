//! The real registry, WinINet and WinHTTP calls.
//!
//! Through `windows-sys` (Microsoft's own bindings, already in the lock
//! file for tokio) rather than `winreg`: the backend needs WinINet's
//! `InternetSetOptionW` and WinHTTP's default proxy as well, which `winreg`
//! does not cover, and the registry part is four calls. The values are
//! read and written as raw type + bytes so that nothing is converted on the
//! way (see `value.rs`).

#![allow(unsafe_code)]

use std::ptr;

use windows_sys::Win32::Foundation::{
    ERROR_FILE_NOT_FOUND, ERROR_MORE_DATA, ERROR_SUCCESS, GetLastError, GlobalFree, WIN32_ERROR,
};
use windows_sys::Win32::Networking::WinHttp::{
    WINHTTP_ACCESS_TYPE_NAMED_PROXY, WINHTTP_PROXY_INFO, WinHttpGetDefaultProxyConfiguration,
};
use windows_sys::Win32::Networking::WinInet::{
    INTERNET_OPTION_REFRESH, INTERNET_OPTION_SETTINGS_CHANGED, InternetSetOptionW,
};
use windows_sys::Win32::System::Registry::{
    HKEY, HKEY_CURRENT_USER, KEY_QUERY_VALUE, RegCloseKey, RegDeleteKeyValueW, RegOpenKeyExW,
    RegQueryValueExW, RegSetKeyValueW,
};
use windows_sys::core::PWSTR;

use super::registry::{Key, Registry, RegistryError, WinHttp};
use super::value::RegValue;

/// The current user's registry.
pub struct SystemRegistry;

/// `s` as a NUL-terminated UTF-16 string.
fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

fn error(action: &'static str, key: Key, name: &str, code: WIN32_ERROR) -> RegistryError {
    RegistryError {
        action,
        path: key.path(),
        name: name.to_owned(),
        detail: std::io::Error::from_raw_os_error(code as i32).to_string(),
    }
}

/// An open key, closed on drop.
struct OpenKey(HKEY);

impl OpenKey {
    /// `None` when the key does not exist.
    fn open(root: HKEY, path: &str, access: u32) -> Result<Option<Self>, WIN32_ERROR> {
        let path = wide(path);
        let mut handle: HKEY = ptr::null_mut();
        // SAFETY: `path` is NUL-terminated and outlives the call; `handle`
        // is a valid out pointer.
        let rc = unsafe { RegOpenKeyExW(root, path.as_ptr(), 0, access, &mut handle) };
        match rc {
            ERROR_SUCCESS => Ok(Some(Self(handle))),
            ERROR_FILE_NOT_FOUND => Ok(None),
            rc => Err(rc),
        }
    }
}

impl Drop for OpenKey {
    fn drop(&mut self) {
        // SAFETY: the handle came from a successful RegOpenKeyExW and is
        // closed once.
        unsafe { RegCloseKey(self.0) };
    }
}

impl Registry for SystemRegistry {
    fn get(&self, key: Key, name: &str) -> Result<Option<RegValue>, RegistryError> {
        let fail = |rc| error("reading", key, name, rc);
        let Some(open) =
            OpenKey::open(HKEY_CURRENT_USER, key.path(), KEY_QUERY_VALUE).map_err(fail)?
        else {
            return Ok(None);
        };
        let wname = wide(name);
        let mut kind = 0u32;
        let mut size = 0u32;
        // SAFETY: a size query: null data, valid out pointers, `wname`
        // NUL-terminated.
        let rc = unsafe {
            RegQueryValueExW(
                open.0,
                wname.as_ptr(),
                ptr::null(),
                &mut kind,
                ptr::null_mut(),
                &mut size,
            )
        };
        match rc {
            ERROR_SUCCESS => {}
            ERROR_FILE_NOT_FOUND => return Ok(None),
            rc => return Err(fail(rc)),
        }
        // The value may grow between the two calls (another program
        // writing); a few tries are enough.
        for _ in 0..4 {
            let mut data = vec![0u8; size as usize];
            let mut len = size;
            // SAFETY: `data` has room for `len` bytes; the other pointers are
            // valid for the call.
            let rc = unsafe {
                RegQueryValueExW(
                    open.0,
                    wname.as_ptr(),
                    ptr::null(),
                    &mut kind,
                    data.as_mut_ptr(),
                    &mut len,
                )
            };
            match rc {
                ERROR_SUCCESS => {
                    data.truncate(len as usize);
                    return Ok(Some(RegValue::from_raw(kind, data)));
                }
                ERROR_MORE_DATA => size = len,
                ERROR_FILE_NOT_FOUND => return Ok(None),
                rc => return Err(fail(rc)),
            }
        }
        Err(fail(ERROR_MORE_DATA))
    }

    fn set(&self, key: Key, name: &str, value: &RegValue) -> Result<(), RegistryError> {
        let (kind, data) = value.to_raw();
        let len = u32::try_from(data.len()).map_err(|_| RegistryError {
            action: "writing",
            path: key.path(),
            name: name.to_owned(),
            detail: "value too large".into(),
        })?;
        let (path, wname) = (wide(key.path()), wide(name));
        // SAFETY: both strings are NUL-terminated; `data` holds `len` bytes.
        // RegSetKeyValueW creates the subkey when it is missing.
        let rc = unsafe {
            RegSetKeyValueW(
                HKEY_CURRENT_USER,
                path.as_ptr(),
                wname.as_ptr(),
                kind,
                data.as_ptr().cast(),
                len,
            )
        };
        match rc {
            ERROR_SUCCESS => Ok(()),
            rc => Err(error("writing", key, name, rc)),
        }
    }

    fn delete(&self, key: Key, name: &str) -> Result<(), RegistryError> {
        let (path, wname) = (wide(key.path()), wide(name));
        // SAFETY: both strings are NUL-terminated and outlive the call.
        let rc = unsafe { RegDeleteKeyValueW(HKEY_CURRENT_USER, path.as_ptr(), wname.as_ptr()) };
        match rc {
            ERROR_SUCCESS | ERROR_FILE_NOT_FOUND => Ok(()),
            rc => Err(error("deleting", key, name, rc)),
        }
    }

    fn winhttp(&self) -> Result<WinHttp, String> {
        let mut info = WINHTTP_PROXY_INFO {
            dwAccessType: 0,
            lpszProxy: ptr::null_mut(),
            lpszProxyBypass: ptr::null_mut(),
        };
        // SAFETY: `info` is a valid out structure; on success its strings are
        // owned by the caller and freed below with GlobalFree.
        let ok = unsafe { WinHttpGetDefaultProxyConfiguration(&mut info) };
        if ok == 0 {
            // SAFETY: reads this thread's last error; no pointers.
            let code = unsafe { GetLastError() };
            return Err(format!(
                "WinHttpGetDefaultProxyConfiguration: {}",
                std::io::Error::from_raw_os_error(code as i32)
            ));
        }
        let server = take_global_string(info.lpszProxy);
        let bypass = take_global_string(info.lpszProxyBypass);
        Ok(match (info.dwAccessType, server) {
            (WINHTTP_ACCESS_TYPE_NAMED_PROXY, Some(server)) => WinHttp::Proxy { server, bypass },
            _ => WinHttp::Direct,
        })
    }

    /// Wine 8 accepts both options but does little with them (SETTINGS_CHANGED
    /// only drops pooled connections, REFRESH is a stub), so what reaches a
    /// running browser is checked on Windows only.
    fn notify(&self) -> Result<(), String> {
        for option in [INTERNET_OPTION_SETTINGS_CHANGED, INTERNET_OPTION_REFRESH] {
            // SAFETY: a null handle and no buffer are what these two options
            // take.
            let ok = unsafe { InternetSetOptionW(ptr::null(), option, ptr::null(), 0) };
            if ok == 0 {
                // SAFETY: reads this thread's last error; no pointers.
                let code = unsafe { GetLastError() };
                return Err(format!(
                    "InternetSetOptionW({option}): {}",
                    std::io::Error::from_raw_os_error(code as i32)
                ));
            }
        }
        Ok(())
    }
}

/// The text of a string WinHTTP allocated with GlobalAlloc, which is freed.
fn take_global_string(p: PWSTR) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // A proxy list longer than this is not a real setting.
    const MAX: usize = 1 << 16;
    // SAFETY: WinHTTP returns a NUL-terminated string; reading stops at the
    // NUL or at MAX units.
    let len = (0..MAX).take_while(|&i| unsafe { *p.add(i) } != 0).count();
    // SAFETY: the `len` units before the NUL are initialised.
    let units = unsafe { std::slice::from_raw_parts(p, len) };
    let text = String::from_utf16_lossy(units);
    // SAFETY: `p` was allocated by WinHTTP with GlobalAlloc and is not
    // used after this.
    unsafe { GlobalFree(p.cast()) };
    (!text.is_empty()).then_some(text)
}

/// Whether this runs under Wine, whose registry a test may change freely.
#[cfg(test)]
pub fn under_wine() -> bool {
    use windows_sys::Win32::System::Registry::HKEY_LOCAL_MACHINE;
    matches!(
        OpenKey::open(HKEY_LOCAL_MACHINE, r"Software\Wine", KEY_QUERY_VALUE),
        Ok(Some(_))
    )
}
