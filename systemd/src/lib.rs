//! What tepui's daemons say to systemd: readiness, status and stopping,
//! and how they hear they should stop;
//! over the notify socket of a `Type=notify` unit (sd_notify(3)'s protocol:
//! one datagram of newline-separated `KEY=VALUE` lines). Outside systemd
//! (no `$NOTIFY_SOCKET`) every call does nothing. [`environment`]: the
//! daemons' flags from the unit's environment, Mesos's names included.

pub mod environment;

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Sends `state` (such as `READY=1\nSTATUS=...`) to the service manager;
/// `Ok(false)` when there is none to tell.
pub fn notify(state: &str) -> io::Result<bool> {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let address = address(socket.as_encoded_bytes())?;
    let sender = UnixDatagram::unbound()?;
    sender.send_to_addr(state.as_bytes(), &address)?;
    Ok(true)
}

/// The daemon is serving; `status` is shown by `systemctl status`.
pub fn ready(status: &str) -> io::Result<bool> {
    notify(&format!("READY=1\nSTATUS={}", one_line(status)))
}

/// A new one-line status for `systemctl status`.
pub fn status(status: &str) -> io::Result<bool> {
    notify(&format!("STATUS={}", one_line(status)))
}

/// The daemon is shutting down.
pub fn stopping(status: &str) -> io::Result<bool> {
    notify(&format!("STOPPING=1\nSTATUS={}", one_line(status)))
}

/// Waits for the signals a service manager or a terminal stops a daemon
/// with, SIGTERM or SIGINT; returns which came.
pub async fn stop_requested() -> io::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

/// A status is one line of the protocol.
fn one_line(status: &str) -> String {
    status.replace('\n', " ")
}

/// `$NOTIFY_SOCKET`: a path, or `@name` for the abstract namespace.
fn address(socket: &[u8]) -> io::Result<SocketAddr> {
    match socket.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(name)
        }
        None if socket.starts_with(b"/") => {
            use std::os::unix::ffi::OsStrExt;
            SocketAddr::from_pathname(std::ffi::OsStr::from_bytes(socket))
        }
        None => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "NOTIFY_SOCKET is neither an absolute path nor an @abstract name",
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn paths_and_abstract_names_are_addresses_and_others_are_refused() {
        assert!(
            address(b"/run/systemd/notify")
                .unwrap()
                .as_pathname()
                .is_some()
        );
        use std::os::linux::net::SocketAddrExt;
        assert_eq!(
            address(b"@tepui-test").unwrap().as_abstract_name(),
            Some(&b"tepui-test"[..])
        );
        assert!(address(b"relative").is_err());
    }

    #[test]
    fn the_datagram_is_what_systemd_reads() {
        let dir = std::env::temp_dir().join(format!("tepui-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let receiver = UnixDatagram::bind(&path).unwrap();
        // SAFETY: no other thread of this test binary reads NOTIFY_SOCKET.
        unsafe { std::env::set_var("NOTIFY_SOCKET", &path) };
        assert!(ready("serving\non 5050").unwrap());
        let mut buffer = [0u8; 256];
        let n = receiver.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"READY=1\nSTATUS=serving on 5050");
        assert!(stopping("bye").unwrap());
        let n = receiver.recv(&mut buffer).unwrap();
        assert_eq!(&buffer[..n], b"STOPPING=1\nSTATUS=bye");
        // SAFETY: as above.
        unsafe { std::env::remove_var("NOTIFY_SOCKET") };
        assert!(!status("nobody listens").unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
