//! An attach through a container monitor's socket (`attach.sock`), asynchronously: the same
//! messages `hako attach` exchanges (see the engine's `tty::attach_socket`), between the
//! monitor and a hijacked API connection.
//!
//! To the monitor: `w` + rows + cols (little-endian u16) resizes the terminal, `i` + bytes is
//! input, `c` closes the container's stdin. From it: `o`/`e` + bytes of output, `x` + the exit
//! status as text. Nothing here forks: a connect, sends and receives on one socket.

use hako_docker::api::StdStream;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// What the attach carries.
pub(crate) struct Streams {
    pub(crate) tty: bool,
    /// The client's input goes to the container.
    pub(crate) stdin: bool,
    /// StdinOnce: the end of the client's input closes the container's stdin.
    pub(crate) once: bool,
    pub(crate) stdout: bool,
    pub(crate) stderr: bool,
}

fn connect(sock: &Path) -> io::Result<OwnedFd> {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    // Through a descriptor of the directory: a state root's path may be longer than a socket
    // address holds.
    let dir = std::fs::File::open(sock.parent().unwrap_or(Path::new("/")))?;
    let name = sock.file_name().unwrap_or_default().to_string_lossy();
    let short = format!("/proc/self/fd/{}/{name}", dir.as_raw_fd());
    let addr = UnixAddr::new(short.as_str())?;
    match connect(fd.as_raw_fd(), &addr) {
        Ok(()) | Err(nix::errno::Errno::EINPROGRESS) | Err(nix::errno::Errno::EAGAIN) => Ok(fd),
        Err(e) => Err(e.into()),
    }
}

async fn send(fd: &AsyncFd<OwnedFd>, msg: &[u8]) -> io::Result<()> {
    loop {
        let mut g = fd.writable().await?;
        let r = g.try_io(|fd| {
            // SAFETY: sending our own buffer on a socket we own.
            let n = unsafe {
                libc::send(
                    fd.as_raw_fd(),
                    msg.as_ptr().cast(),
                    msg.len(),
                    libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        });
        match r {
            Ok(r) => return r,
            Err(_would_block) => continue,
        }
    }
}

async fn recv(fd: &AsyncFd<OwnedFd>, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        let mut g = fd.readable().await?;
        let r = g.try_io(|fd| {
            // SAFETY: receiving into our own buffer from a socket we own.
            let n = unsafe {
                libc::recv(
                    fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match r {
            Ok(r) => return r,
            Err(_would_block) => continue,
        }
    }
}

/// Pumps until the container exits, the monitor closes, or the client goes. Returns the exit
/// status when the monitor sent one.
pub(crate) async fn pump<R, W>(
    sock: &Path,
    client_in: &mut R,
    client_out: &mut W,
    s: Streams,
    mut resize: tokio::sync::mpsc::Receiver<(u16, u16)>,
) -> io::Result<Option<i32>>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // SAFETY: the OwnedFd is moved into the AsyncFd and stays open as long as it lives.
    let fd = unsafe { AsyncFd::register(connect(sock)?) }
        .map_err(|e| io::Error::other(format!("register the attach socket: {e}")))?;
    let mut input_open = s.stdin;
    let mut inbuf = vec![0u8; 32 * 1024];
    let mut msg = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            n = recv(&fd, &mut msg) => {
                let n = n?;
                if n == 0 {
                    return Ok(None);
                }
                let data = &msg[1..n];
                let out = match msg[0] {
                    b'o' if s.stdout => Some(StdStream::Stdout),
                    b'e' if s.stderr => Some(StdStream::Stderr),
                    b'x' => {
                        return Ok(std::str::from_utf8(data).ok().and_then(|c| c.parse().ok()));
                    }
                    _ => None,
                };
                if let Some(stream) = out {
                    let f = crate::api::containers_framed(s.tty, stream, data);
                    if client_out.write_all(&f).await.is_err() {
                        return Ok(None);
                    }
                }
            }
            r = client_in.read(&mut inbuf[1..]), if input_open => {
                match r {
                    Ok(0) | Err(_) => {
                        input_open = false;
                        if s.once {
                            send(&fd, b"c").await?;
                        } else if !s.tty {
                            // The container's stdin stays open for the next attach, and
                            // this attach has no input left to pass: it ends, as Docker's.
                            return Ok(None);
                        }
                    }
                    Ok(k) => {
                        inbuf[0] = b'i';
                        send(&fd, &inbuf[..=k]).await?;
                    }
                }
            }
            Some((h, w)) = resize.recv() => {
                let mut m = vec![b'w'];
                m.extend_from_slice(&h.to_le_bytes());
                m.extend_from_slice(&w.to_le_bytes());
                send(&fd, &m).await?;
            }
        }
    }
}
