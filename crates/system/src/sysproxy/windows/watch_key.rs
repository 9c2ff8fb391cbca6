//! `RegNotifyChangeKeyValue` on `HKCU\...\Internet Settings` (and its
//! `Connections` subkey): the registry says when any program writes the
//! proxy values, so a drift is seen at once.

#![allow(unsafe_code)]

use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use windows_sys::Win32::Foundation::{CloseHandle, ERROR_SUCCESS, HANDLE, WAIT_OBJECT_0};
use windows_sys::Win32::System::Registry::{
    HKEY, HKEY_CURRENT_USER, KEY_NOTIFY, REG_NOTIFY_CHANGE_LAST_SET, REG_NOTIFY_CHANGE_NAME,
    RegCloseKey, RegNotifyChangeKeyValue, RegOpenKeyExW,
};
use windows_sys::Win32::System::Threading::{CreateEventW, WaitForSingleObject};

use super::registry::Key;

/// How long one wait lasts before the stop flag is looked at (ms).
const WAIT_MS: u32 = 500;

/// The open key and the event the registry signals, closed on drop.
struct Watch {
    key: HKEY,
    event: HANDLE,
}

// SAFETY: both handles are plain kernel handles, usable from any thread;
// only the watcher thread uses them after they are moved there.
unsafe impl Send for Watch {}

impl Drop for Watch {
    fn drop(&mut self) {
        // SAFETY: both were opened by `start` and are closed once.
        unsafe {
            RegCloseKey(self.key);
            CloseHandle(self.event);
        }
    }
}

impl Watch {
    /// Asks for one notification of a change under the key.
    fn arm(&self) -> bool {
        let filter = REG_NOTIFY_CHANGE_LAST_SET | REG_NOTIFY_CHANGE_NAME;
        // SAFETY: `key` is open with KEY_NOTIFY and `event` is a valid event
        // handle; asynchronous mode returns at once.
        let rc = unsafe { RegNotifyChangeKeyValue(self.key, 1, filter, self.event, 1) };
        rc == ERROR_SUCCESS
    }
}

pub fn start(wake: super::super::watch::Wake, stop: Arc<AtomicBool>) -> Result<(), String> {
    let path: Vec<u16> = Key::InternetSettings
        .path()
        .encode_utf16()
        .chain(std::iter::once(0))
        .collect();
    let mut key: HKEY = ptr::null_mut();
    // SAFETY: `path` is NUL-terminated; `key` is a valid out pointer.
    let rc = unsafe { RegOpenKeyExW(HKEY_CURRENT_USER, path.as_ptr(), 0, KEY_NOTIFY, &mut key) };
    if rc != ERROR_SUCCESS {
        return Err(format!(
            "opening the Internet Settings key: {}",
            std::io::Error::from_raw_os_error(rc as i32)
        ));
    }
    // SAFETY: an unnamed auto-reset event with default security.
    let event = unsafe { CreateEventW(ptr::null(), 0, 0, ptr::null()) };
    if event.is_null() {
        // SAFETY: opened above, closed once.
        unsafe { RegCloseKey(key) };
        return Err(format!(
            "creating an event: {}",
            std::io::Error::last_os_error()
        ));
    }
    let watch = Watch { key, event };
    if !watch.arm() {
        return Err("RegNotifyChangeKeyValue refused the key".into());
    }
    std::thread::Builder::new()
        .name("veil-watch-registry".into())
        .spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                // SAFETY: `watch.event` stays open for the thread's life.
                let rc = unsafe { WaitForSingleObject(watch.event, WAIT_MS) };
                if rc == WAIT_OBJECT_0 {
                    // Armed again before waking, so a change made while the
                    // caller reads back is not missed.
                    if !watch.arm() {
                        tracing::warn!("registry change notification stopped; polling only");
                        return;
                    }
                    wake();
                }
            }
        })
        .map(|_| ())
        .map_err(|e| format!("starting the watcher thread: {e}"))
}
