//! `connect` (hidden): the ProxyCommand of the bottle's SSH hosts. It asks
//! the gate for a CONNECT tunnel to HOST:PORT and then carries ssh's stdin
//! and stdout through it, so SSH leaves the bottle the one way everything
//! else does, and the gate decides it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::ExitCode;

use crate::error::CommandError;

pub(crate) fn run(proxy: &str, host: &str, port: u16) -> Result<ExitCode, CommandError> {
    let failed = |what: &str, err: std::io::Error| {
        bottle::Error::caused_by(format!("cannot {what} the gate at {proxy}"), err)
    };
    let mut gate = TcpStream::connect(proxy).map_err(|err| failed("reach", err))?;
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    write!(
        gate,
        "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n"
    )
    .map_err(|err| failed("write to", err))?;
    let mut answer = BufReader::new(gate.try_clone().map_err(|err| failed("read", err))?);
    let mut status = String::new();
    answer
        .read_line(&mut status)
        .map_err(|err| failed("read", err))?;
    loop {
        let mut line = String::new();
        if answer
            .read_line(&mut line)
            .map_err(|err| failed("read", err))?
            <= 2
        {
            break;
        }
    }
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(
            bottle::Error::new(format!("the gate refused {authority}: {}", status.trim()))
                .hint("the gate admits only the bottle's declared ssh hosts, each at its port")
                .into(),
        );
    }
    // What the gate sent after its head already belongs to ssh.
    let early = answer.buffer().to_vec();
    let mut from_gate = gate.try_clone().map_err(|err| failed("read", err))?;
    let down = std::thread::spawn(move || {
        let mut stdout = std::io::stdout().lock();
        if stdout
            .write_all(&early)
            .and_then(|()| stdout.flush())
            .is_ok()
        {
            pump(&mut from_gate, &mut stdout);
        }
    });
    pump(&mut std::io::stdin().lock(), &mut gate);
    let _ = gate.shutdown(std::net::Shutdown::Write);
    let _ = down.join();
    Ok(ExitCode::SUCCESS)
}

/// Copies until either side ends, flushing every chunk: stdout holds a
/// line back until its end, and SSH packets have none. (Not `io::copy`,
/// whose `splice` between a pipe and a socket some sandboxes, gVisor
/// among them, refuse.)
fn pump(from: &mut impl Read, to: &mut impl Write) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).and_then(|()| to.flush()).is_err() {
                    return;
                }
            }
        }
    }
}
