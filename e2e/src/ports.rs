//! Free loopback ports.

use std::net::TcpListener;

/// A port nothing listens on right now. Another process may take it before the caller binds it;
/// callers that start servers retry on a bind failure.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
