//! The gate under load while nobody reads its decision log: the gate runs
//! as a process on this machine with its stdout a pipe that is never read
//! once it said it is ready, so that pipe fills. Tunnels must keep moving
//! and new requests must still be decided, for a gate that waited on its
//! log would hold every bottle's traffic hostage to a slow reader.
//!
//! The upstream is a listener on one of this machine's own non-loopback
//! addresses, allowed to the gate as an IP literal (the gate never dials
//! loopback). Figures are printed, never asserted.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{BIN, skip};

const TUNNELS: usize = 200;
const PER_TUNNEL: usize = 1 << 20;

/// Reads each connection to its end and answers with the byte count.
fn counting_upstream() -> (String, u16) {
    let address = this_machines_address();
    let listener = TcpListener::bind((address, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                let mut total = 0usize;
                while let Ok(n @ 1..) = stream.read(&mut buf) {
                    total += n;
                }
                let _ = writeln!(stream, "{total}");
            });
        }
    });
    (address.to_string(), port)
}

fn this_machines_address() -> Ipv4Addr {
    let out = Command::new("hostname").arg("-I").output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .filter_map(|a| a.parse::<Ipv4Addr>().ok())
        .find(|a| !a.is_loopback())
        .expect("this machine has a non-loopback IPv4 address")
}

/// Sends back what each connection sends, until it closes.
fn echo_upstream() -> (String, u16) {
    let address = this_machines_address();
    let listener = TcpListener::bind((address, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            // A thousand of these at once: small stacks.
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n @ 1..) = stream.read(&mut buf) {
                        if stream.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                })
                .unwrap();
        }
    });
    (address.to_string(), port)
}

/// Lets this process hold a few thousand sockets.
fn raise_own_file_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    setrlimit(Resource::Nofile, limit).unwrap();
    let open = getrlimit(Resource::Nofile).current;
    assert!(
        open.is_none_or(|open| open > 4 * 1024),
        "this test holds about 2,200 sockets and may open only {open:?} files"
    );
}

/// Writes `word` through `stream` and reads it back.
fn ping(stream: &mut TcpStream, word: &str) -> Result<(), String> {
    stream
        .write_all(word.as_bytes())
        .map_err(|err| format!("write: {err}"))?;
    let mut back = vec![0u8; word.len()];
    stream
        .read_exact(&mut back)
        .map_err(|err| format!("read: {err}"))?;
    if back == word.as_bytes() {
        Ok(())
    } else {
        Err(format!("came back as {:?}", String::from_utf8_lossy(&back)))
    }
}

/// A field of `/proc/PID/status` in KiB (`VmHWM`, `VmRSS`).
fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

struct Gate {
    child: Child,
    address: String,
    /// Held and, unless drained, never read: the pipe fills.
    log: Option<BufReader<ChildStdout>>,
}

impl Gate {
    fn start(allow: &str) -> Self {
        Self::start_with(allow, &["--max-connections", "1024"])
    }

    /// A gate started as an engine since Docker 25 starts a container: at a
    /// soft limit of 1024 open files (and the hard limit this process has).
    fn start_with(allow: &str, args: &[&str]) -> Self {
        let mut child = Command::new("sh")
            .args(["-c", r#"ulimit -S -n 1024 && exec "$@""#, "sh", BIN])
            .args(["gate", "--listen", "127.0.0.1:0", "--allow", allow])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut log = BufReader::new(child.stdout.take().unwrap());
        let mut ready = String::new();
        log.read_line(&mut ready).unwrap();
        let event = egress_gate::event::GateEvent::parse(&ready)
            .unwrap_or_else(|| panic!("the gate said {ready:?}"));
        assert!(event.is_ready(), "{ready}");
        let listen: serde_json::Value = serde_json::from_str(&ready).unwrap();
        let address = listen["listen"].as_str().unwrap().to_owned();
        Self {
            child,
            address,
            log: Some(log),
        }
    }

    /// Reads the log from now on, as the engine's log driver would.
    fn drain_log(&mut self) {
        let mut log = self.log.take().unwrap();
        std::thread::spawn(move || std::io::copy(&mut log, &mut std::io::sink()));
    }

    /// Bytes written to the log and not read yet.
    fn unread_log(&self) -> usize {
        let log = self.log.as_ref().unwrap().get_ref();
        rustix::io::ioctl_fionread(log).unwrap().try_into().unwrap()
    }

    /// Sends `CONNECT target`; the stream and the status code.
    fn connect(&self, target: &str) -> (TcpStream, u16) {
        let mut stream = TcpStream::connect(&self.address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        write!(
            stream,
            "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8];
        while !head.ends_with(b"\r\n\r\n") {
            stream
                .read_exact(&mut byte)
                .unwrap_or_else(|err| panic!("CONNECT {target}: no answer ({err})"));
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (stream, code)
    }
}

/// Opens `count` tunnels to `upstream` and proves each carries bytes.
fn hold_tunnels(gate: &Gate, upstream: &str, count: usize) -> Vec<TcpStream> {
    (0..count)
        .map(|i| {
            let (mut stream, code) = gate.connect(upstream);
            assert_eq!(code, 200, "tunnel {i} of {count} was refused");
            ping(&mut stream, &format!("hello {i}\n"))
                .unwrap_or_else(|err| panic!("tunnel {i} of {count}: {err}"));
            stream
        })
        .collect()
}

/// Proves every one of `tunnels` still carries bytes both ways.
fn all_carry(tunnels: &mut [TcpStream], when: &str) {
    for (i, stream) in tunnels.iter_mut().enumerate() {
        ping(stream, &format!("still {i}\n"))
            .unwrap_or_else(|err| panic!("{when}: tunnel {i} no longer carries: {err}"));
    }
}

/// A gate started with `args` whose log is read, and the echo upstream
/// it allows; `None` (a loud skip) where the binary is not built. This
/// process may then hold a few thousand sockets.
fn echo_gate(test: &str, args: &[&str]) -> Option<(Gate, String)> {
    if !std::path::Path::new(BIN).exists() {
        return skip(test, format!("{BIN} is not built"));
    }
    raise_own_file_limit();
    let (address, port) = echo_upstream();
    let upstream = format!("{address}:{port}");
    let mut gate = Gate::start_with(&upstream, args);
    gate.drain_log();
    Some((gate, upstream))
}

#[test]
#[allow(clippy::cast_precision_loss, reason = "figures to print")]
fn a_thousand_tunnels_are_held_in_bounded_memory_while_new_requests_are_decided() {
    let Some((gate, upstream)) = echo_gate("a thousand tunnels", &["--max-connections", "1100"])
    else {
        return;
    };
    let pid = gate.child.id();
    let idle = memory_kib(pid, "VmRSS");

    let started = Instant::now();
    let mut tunnels = hold_tunnels(&gate, &upstream, 1000);
    let opened_in = started.elapsed();
    // Held, the gate still decides: one more tunnel, and a refusal.
    let started = Instant::now();
    let (mut another, allowed) = gate.connect(&upstream);
    let (_, refused) = gate.connect("elsewhere.invalid:443");
    let decided_in = started.elapsed();
    assert_eq!((allowed, refused), (200, 403));
    ping(&mut another, "one more\n").unwrap();
    all_carry(&mut tunnels, "after the new requests");

    let peak = memory_kib(pid, "VmHWM");
    // A held tunnel is its task and its two pipes: the bytes go through the
    // kernel, so no buffer of the gate's waits on an idle tunnel. Two
    // 16 KiB copy buffers a tunnel would not pass this.
    assert!(
        peak - idle < 16 * 1000,
        "the gate grew from {idle} KiB to {peak} KiB holding 1,000 tunnels"
    );
    eprintln!(
        "a thousand tunnels: opened in {:.2} s; gate memory {idle} KiB idle, peak {peak} KiB \
         ({:.1} KiB a tunnel); an allowed and a refused request decided in {:.1} ms while held",
        opened_in.as_secs_f64(),
        (peak - idle) as f64 / 1000.0,
        decided_in.as_secs_f64() * 1e3,
    );
}

#[test]
fn over_the_default_cap_connections_get_a_503_and_the_tunnels_held_go_on() {
    let Some((gate, upstream)) = echo_gate("over the default cap", &[]) else {
        return;
    };
    // The default cap, as `gate --help` gives it.
    let cap = 256;
    let mut tunnels = hold_tunnels(&gate, &upstream, cap);
    for extra in 0..20 {
        let (_, code) = gate.connect(&upstream);
        assert_eq!(code, 503, "connection {extra} over the cap");
    }
    all_carry(&mut tunnels, "after the 503s");
    // A tunnel that closes makes room for the next.
    drop(tunnels.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut next = loop {
        let (stream, code) = gate.connect(&upstream);
        if code == 200 {
            break stream;
        }
        assert_eq!(code, 503);
        assert!(Instant::now() < deadline, "no room after a tunnel closed");
        std::thread::sleep(Duration::from_millis(50));
    };
    ping(&mut next, "room\n").unwrap();
    all_carry(&mut tunnels, "after one closed");
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Moves [`PER_TUNNEL`] bytes through each of [`TUNNELS`] tunnels at once;
/// the aggregate rate in MB/s.
fn through_tunnels(gate: &Gate, upstream: &str) -> f64 {
    let chunk = vec![0x5au8; 64 * 1024];
    let started = Instant::now();
    std::thread::scope(|scope| {
        let tunnels: Vec<_> = (0..TUNNELS)
            .map(|_| {
                let (mut stream, code) = gate.connect(upstream);
                assert_eq!(code, 200, "a tunnel was refused");
                let chunk = &chunk;
                scope.spawn(move || {
                    for _ in 0..PER_TUNNEL / chunk.len() {
                        stream.write_all(chunk).unwrap();
                    }
                    stream.shutdown(std::net::Shutdown::Write).unwrap();
                    let mut answer = String::new();
                    stream.read_to_string(&mut answer).unwrap();
                    assert_eq!(answer.trim(), PER_TUNNEL.to_string(), "bytes were lost");
                })
            })
            .collect();
        for tunnel in tunnels {
            tunnel.join().unwrap();
        }
    });
    #[allow(clippy::cast_precision_loss, reason = "a rate to print")]
    let rate = (TUNNELS * PER_TUNNEL) as f64 / started.elapsed().as_secs_f64() / 1e6;
    rate
}

#[test]
fn tunnels_keep_moving_and_requests_are_decided_while_nobody_reads_the_log() {
    if !std::path::Path::new(BIN).exists() {
        skip::<()>("gate under load", format!("{BIN} is not built"));
        return;
    }
    let (address, port) = counting_upstream();
    let upstream = format!("{address}:{port}");

    // The control: the same load with the log read as it is written.
    let mut read = Gate::start(&upstream);
    read.drain_log();
    let with_reader = through_tunnels(&read, &upstream);
    drop(read);

    let unread = Gate::start(&upstream);
    // Refusals until the pipe is full: a gate that waits on its log
    // stops here.
    let mut refused = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    // A pipe holds 64 KiB; lines go in whole, so it may stop short of that.
    while unread.unread_log() < 60 * 1024 {
        let (_, code) = unread.connect(&format!("refused-{refused}.invalid:443"));
        assert_eq!(code, 403);
        refused += 1;
        assert!(Instant::now() < deadline, "the log pipe never filled");
    }
    for extra in 0..200 {
        let (_, code) = unread.connect(&format!("more-{extra}.invalid:443"));
        assert_eq!(code, 403, "a refusal after the pipe filled");
    }
    let without_reader = through_tunnels(&unread, &upstream);
    let started = Instant::now();
    let (_, allowed) = unread.connect(&upstream);
    let (_, refused_now) = unread.connect("late.invalid:443");
    let decided_in = started.elapsed();
    assert_eq!((allowed, refused_now), (200, 403));
    eprintln!(
        "gate under load: {TUNNELS} tunnels x {} MiB: {with_reader:.0} MB/s with the log read, \
         {without_reader:.0} MB/s with a full log pipe ({} bytes unread after {refused} \
         refusals); two new requests decided in {:.1} ms",
        PER_TUNNEL >> 20,
        unread.unread_log(),
        decided_in.as_secs_f64() * 1e3,
    );
}
