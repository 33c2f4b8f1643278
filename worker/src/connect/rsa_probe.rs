//! Whether a MySQL server refuses every `caching_sha2_password` login over a connection without
//! TLS because it has no RSA key pair, found out without sending the password.
//!
//! Without TLS, the password of a `caching_sha2_password` user can only travel encrypted with the
//! server's RSA public key (the driver asks the server for it). A server without a key pair
//! answers with "Access denied", the very error a wrong password gets; only its own log says
//! "Authentication requires either RSA keys or SSL encryption". The probe plays the first steps
//! of the protocol with a scramble no password gives: the server asks for full authentication,
//! the probe asks for the public key, reads whether it comes, and hangs up.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PLUGIN: &[u8] = b"caching_sha2_password";
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

const CLIENT_LONG_PASSWORD: u32 = 0x1;
const CLIENT_PROTOCOL_41: u32 = 0x200;
const CLIENT_SECURE_CONNECTION: u32 = 0x8000;
const CLIENT_PLUGIN_AUTH: u32 = 0x8_0000;

/// caching_sha2_password's "fast authentication failed, send the password" and "send me your
/// public key" messages.
const PERFORM_FULL_AUTHENTICATION: [u8; 2] = [0x01, 0x04];
const REQUEST_PUBLIC_KEY: u8 = 0x02;

/// Whether the server at `host:port` asks for `user`'s password with `caching_sha2_password`
/// and has no public key to receive it over a plain connection. False when it has one, uses
/// another plugin, or the probe cannot tell.
pub async fn lacks_rsa_keys(host: &str, port: u16, user: &str) -> bool {
    let probe = public_key_offered(host, port, user);
    matches!(tokio::time::timeout(PROBE_TIMEOUT, probe).await, Ok(Ok(Some(false))))
}

/// Some(whether the server sends its public key), or None when the exchange is not
/// `caching_sha2_password`'s full authentication.
async fn public_key_offered(host: &str, port: u16, user: &str) -> io::Result<Option<bool>> {
    let mut stream = TcpStream::connect((host, port)).await?;
    let greeting = read_packet(&mut stream).await?;
    if greeting_plugin(&greeting) != Some(PLUGIN) {
        return Ok(None);
    }
    write_packet(&mut stream, 1, &handshake_response(user)).await?;
    if read_packet(&mut stream).await? != PERFORM_FULL_AUTHENTICATION {
        return Ok(None);
    }
    write_packet(&mut stream, 3, &[REQUEST_PUBLIC_KEY]).await?;
    let answer = read_packet(&mut stream).await?;
    Ok(match answer.first() {
        Some(0x01) => Some(true),
        Some(0xff) => Some(false),
        _ => None,
    })
}

/// The authentication plugin a protocol 10 greeting names.
fn greeting_plugin(greeting: &[u8]) -> Option<&[u8]> {
    let rest = greeting.strip_prefix(&[10])?;
    let version_end = rest.iter().position(|&b| b == 0)?;
    // Connection id (4), scramble part 1 (8), filler (1), capabilities (2), character set (1),
    // status (2), capabilities (2), scramble length (1), reserved (10), scramble part 2.
    let fixed = rest.get(version_end + 1..)?;
    let scramble_len = usize::from(*fixed.get(20)?);
    let plugin = fixed.get(31 + scramble_len.saturating_sub(8).max(13)..)?;
    let end = plugin.iter().position(|&b| b == 0).unwrap_or(plugin.len());
    Some(&plugin[..end])
}

/// A HandshakeResponse41 for `user` whose scramble (32 zero bytes) matches no password.
fn handshake_response(user: &str) -> Vec<u8> {
    let capabilities =
        CLIENT_LONG_PASSWORD | CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH;
    let mut out = Vec::with_capacity(96 + user.len());
    out.extend(capabilities.to_le_bytes());
    out.extend((16u32 << 20).to_le_bytes());
    out.push(45); // utf8mb4_general_ci
    out.extend([0u8; 23]);
    out.extend(user.as_bytes());
    out.push(0);
    out.push(32);
    out.extend([0u8; 32]);
    out.extend(PLUGIN);
    out.push(0);
    out
}

async fn read_packet(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).await?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
    let mut payload = vec![0; len];
    stream.read_exact(&mut payload).await?;
    Ok(payload)
}

/// Writes one packet; the probe's payloads are far below the protocol's 16 MiB packet limit.
async fn write_packet(stream: &mut TcpStream, sequence: u8, payload: &[u8]) -> io::Result<()> {
    let len = (payload.len() as u32).to_le_bytes();
    let mut bytes = vec![len[0], len[1], len[2], sequence];
    bytes.extend_from_slice(payload);
    stream.write_all(&bytes).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_greeting_names_its_plugin() {
        let mut greeting = vec![10];
        greeting.extend(b"9.7.4\0");
        greeting.extend([1, 0, 0, 0]);
        greeting.extend([7u8; 8]);
        greeting.push(0);
        greeting.extend([0xff, 0xff, 45, 2, 0, 0xff, 0xdf, 21]);
        greeting.extend([0u8; 10]);
        greeting.extend([9u8; 12]);
        greeting.push(0);
        greeting.extend(b"caching_sha2_password\0");
        assert_eq!(greeting_plugin(&greeting), Some(PLUGIN));
        assert_eq!(greeting_plugin(&greeting[..30]), None);
        assert_eq!(greeting_plugin(&[0xff, 0x15, 0x04]), None);
    }
}
