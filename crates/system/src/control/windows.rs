//! The control channel on Windows: a named pipe (`\\.\pipe\veil-…`) that
//! only the current user can open.
//!
//! A named pipe with the default security descriptor can be opened by other
//! accounts on the machine (the default DACL also admits SYSTEM and the
//! Administrators, and a pipe is reachable over SMB unless refused). So each
//! instance is created with an explicit, protected DACL that has one entry,
//! full access for this process's user SID (SDDL `D:P(A;;GA;;;SID)`), and
//! remote clients are rejected. The first instance is created with
//! `FILE_FLAG_FIRST_PIPE_INSTANCE`, so a program that squats the name first
//! makes `bind` fail instead of sharing the pipe with it.
//!
//! The FFI (the user's SID, the security descriptor, reading a pipe's DACL
//! back for the tests) is what needs `unsafe`; it stays in this file.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::windows::named_pipe::{
    ClientOptions, NamedPipeClient, NamedPipeServer, ServerOptions,
};
use windows_sys::Win32::Foundation::{
    CloseHandle, ERROR_ACCESS_DENIED, ERROR_PIPE_BUSY, HANDLE, LocalFree,
};
use windows_sys::Win32::Security::Authorization::{
    ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW, SDDL_REVISION_1,
};
use windows_sys::Win32::Security::{
    GetTokenInformation, PSECURITY_DESCRIPTOR, SECURITY_ATTRIBUTES, TOKEN_QUERY, TOKEN_USER,
    TokenUser,
};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

use super::{ControlError, Controller, answer, connect_error};

#[derive(Debug)]
pub(super) struct Server {
    /// The instance waiting for the next client.
    pipe: NamedPipeServer,
    name: PathBuf,
    security: SecurityDescriptor,
}

impl Server {
    pub(super) async fn bind(path: &Path) -> Result<Self, ControlError> {
        let io_err = |source| ControlError::Io {
            path: path.to_path_buf(),
            source,
        };
        let security = SecurityDescriptor::current_user_only().map_err(io_err)?;
        // A pipe of this name already exists: another Veil, or a squatter.
        // FILE_FLAG_FIRST_PIPE_INSTANCE below refuses it too on Windows, but
        // not under Wine, and this way the error says which case it is.
        match ClientOptions::new().open(path) {
            Ok(_) => {
                return Err(ControlError::AlreadyRunning {
                    path: path.to_path_buf(),
                });
            }
            Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY as i32) => {
                return Err(ControlError::AlreadyRunning {
                    path: path.to_path_buf(),
                });
            }
            Err(_) => {}
        }
        let pipe = match create(path, &security, true) {
            Ok(pipe) => pipe,
            Err(e) if e.raw_os_error() == Some(ERROR_ACCESS_DENIED as i32) => {
                // The name is taken: by another Veil (it answers), or by
                // something else that must not receive our clients.
                return Err(match ClientOptions::new().open(path) {
                    Ok(_) => ControlError::AlreadyRunning {
                        path: path.to_path_buf(),
                    },
                    Err(_) => io_err(io::Error::other(
                        "another program holds this pipe name; Veil will not share it",
                    )),
                });
            }
            Err(e) => return Err(io_err(e)),
        };
        Ok(Self {
            pipe,
            name: path.to_path_buf(),
            security,
        })
    }

    pub(super) fn path(&self) -> &Path {
        &self.name
    }

    pub(super) async fn serve(
        mut self,
        controller: Arc<dyn Controller>,
        stop: impl Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        loop {
            let connected = tokio::select! {
                r = self.pipe.connect() => r,
                _ = &mut stop => break,
            };
            if let Err(e) = connected {
                tracing::warn!("control pipe connect failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            // A new instance waits for the next client before this one is
            // handed over, so the name never disappears between clients.
            let next = match create(&self.name, &self.security, false) {
                Ok(next) => next,
                Err(e) => {
                    tracing::warn!("control pipe: cannot create the next instance: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let client = std::mem::replace(&mut self.pipe, next);
            tokio::spawn(answer(client, controller.clone()));
        }
    }
}

/// One pipe instance with `security` as its descriptor.
fn create(name: &Path, security: &SecurityDescriptor, first: bool) -> io::Result<NamedPipeServer> {
    let mut attributes = SECURITY_ATTRIBUTES {
        nLength: size_of::<SECURITY_ATTRIBUTES>() as u32,
        lpSecurityDescriptor: security.0,
        bInheritHandle: 0,
    };
    let mut options = ServerOptions::new();
    options
        .first_pipe_instance(first)
        .reject_remote_clients(true);
    // SAFETY: `attributes` is a valid SECURITY_ATTRIBUTES whose descriptor
    // (owned by `security`) outlives this call; CreateNamedPipeW copies it.
    unsafe {
        options.create_with_security_attributes_raw(name, (&raw mut attributes).cast::<c_void>())
    }
}

pub(super) async fn connect(path: &Path) -> Result<NamedPipeClient, ControlError> {
    // Every instance busy (another client between `connect` and the next
    // instance): wait a moment; the caller's timeout bounds the loop.
    loop {
        match ClientOptions::new().open(path) {
            Ok(client) => return Ok(client),
            Err(e) if e.raw_os_error() == Some(ERROR_PIPE_BUSY as i32) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(connect_error(path, e)),
        }
    }
}

/// A self-relative security descriptor allocated by
/// `ConvertStringSecurityDescriptorToSecurityDescriptorW`, freed on drop.
#[derive(Debug)]
struct SecurityDescriptor(PSECURITY_DESCRIPTOR);

// SAFETY: the descriptor is plain memory owned by this value and never
// written after it is made; the pipe calls only read it.
unsafe impl Send for SecurityDescriptor {}
// SAFETY: as above, shared access is read-only.
unsafe impl Sync for SecurityDescriptor {}

impl SecurityDescriptor {
    /// `D:P(A;;GA;;;SID)`: a protected DACL with one entry, all access for
    /// the current user.
    fn current_user_only() -> io::Result<Self> {
        let sddl = format!("D:P(A;;GA;;;{})", current_user_sid()?);
        let wide = wide(&sddl);
        let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        // SAFETY: `wide` is NUL-terminated; `sd` receives a LocalAlloc'd
        // descriptor that `Drop` frees.
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                wide.as_ptr(),
                SDDL_REVISION_1,
                &mut sd,
                std::ptr::null_mut(),
            )
        };
        if ok == 0 || sd.is_null() {
            return Err(io::Error::last_os_error());
        }
        Ok(Self(sd))
    }
}

impl Drop for SecurityDescriptor {
    fn drop(&mut self) {
        // SAFETY: allocated with LocalAlloc by the conversion above.
        unsafe { LocalFree(self.0) };
    }
}

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

/// Reads a NUL-terminated UTF-16 string that LocalAlloc made, and frees it.
///
/// # Safety
/// `p` must be such a string (or null).
unsafe fn take_local_wide(p: *mut u16) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: per the contract, `p` is NUL-terminated.
    let len = (0..).take_while(|&i| unsafe { *p.add(i) } != 0).count();
    // SAFETY: `len` u16s were just read from `p`.
    let s = String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(p, len) });
    // SAFETY: LocalAlloc'd per the contract.
    unsafe { LocalFree(p.cast()) };
    Some(s)
}

/// The current process's user as a string SID (`S-1-5-21-…`).
pub(crate) fn current_user_sid() -> io::Result<String> {
    let mut token: HANDLE = std::ptr::null_mut();
    // SAFETY: GetCurrentProcess returns a pseudo-handle; `token` receives a
    // handle that is closed below.
    if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
        return Err(io::Error::last_os_error());
    }
    let result = token_user_sid(token);
    // SAFETY: `token` was opened above.
    unsafe { CloseHandle(token) };
    result
}

fn token_user_sid(token: HANDLE) -> io::Result<String> {
    let mut needed = 0u32;
    // SAFETY: a size query with no buffer; fails with the size in `needed`.
    unsafe { GetTokenInformation(token, TokenUser, std::ptr::null_mut(), 0, &mut needed) };
    if needed == 0 {
        return Err(io::Error::last_os_error());
    }
    // u64s keep TOKEN_USER's pointer field aligned.
    let mut buf = vec![0u64; (needed as usize).div_ceil(8)];
    // SAFETY: `buf` holds at least `needed` bytes.
    let ok = unsafe {
        GetTokenInformation(
            token,
            TokenUser,
            buf.as_mut_ptr().cast(),
            needed,
            &mut needed,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on success the buffer starts with a TOKEN_USER whose SID
    // points into the same buffer.
    let user = unsafe { &*buf.as_ptr().cast::<TOKEN_USER>() };
    let mut text: *mut u16 = std::ptr::null_mut();
    // SAFETY: the SID is valid while `buf` lives; `text` is LocalAlloc'd.
    if unsafe { ConvertSidToStringSidW(user.User.Sid, &mut text) } == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: ConvertSidToStringSidW made `text`.
    unsafe { take_local_wide(text) }.ok_or_else(|| io::Error::other("empty SID"))
}

/// The DACL of an open pipe (either end) as SDDL, for the tests.
#[cfg(test)]
pub(super) fn dacl_sddl(handle: HANDLE) -> io::Result<String> {
    use windows_sys::Win32::Security::Authorization::{
        ConvertSecurityDescriptorToStringSecurityDescriptorW, GetSecurityInfo, SE_KERNEL_OBJECT,
    };
    use windows_sys::Win32::Security::DACL_SECURITY_INFORMATION;
    let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
    // SAFETY: `handle` is an open pipe; `sd` receives a LocalAlloc'd copy.
    let status = unsafe {
        GetSecurityInfo(
            handle,
            SE_KERNEL_OBJECT,
            DACL_SECURITY_INFORMATION,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut sd,
        )
    };
    if status != 0 {
        return Err(io::Error::from_raw_os_error(status as i32));
    }
    let owned = SecurityDescriptor(sd);
    let mut text: *mut u16 = std::ptr::null_mut();
    // SAFETY: `owned.0` is a valid descriptor; `text` is LocalAlloc'd.
    let ok = unsafe {
        ConvertSecurityDescriptorToStringSecurityDescriptorW(
            owned.0,
            SDDL_REVISION_1,
            DACL_SECURITY_INFORMATION,
            &mut text,
            std::ptr::null_mut(),
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: made by the conversion above.
    unsafe { take_local_wide(text) }.ok_or_else(|| io::Error::other("empty SDDL"))
}
