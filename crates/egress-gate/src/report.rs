//! The counts of what the gate decided, and the refused names in full:
//! for the session's summary, and names only on the user's terminal.
//!
//! The log redacts refused names because it is kept on disk and shipped by
//! log collectors, where a name an agent made up (`<secret>.evil.example`)
//! would carry data out. The user at the end of a session needs the names
//! whole to decide what to allow. So the gate also serves them, from
//! memory, on its own loopback: only a process in the gate's container
//! reaches it (an exec the CLI starts, whose output is never logged), and
//! the gate never dials loopback for the agent.

use std::net::{Ipv4Addr, SocketAddr};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::log::DecisionLog;

/// Where the report is served, inside the gate's network namespace.
pub const REPORT_ADDRESS: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 3129);

/// Serves each connection the report as one JSON line, then closes it.
pub async fn serve_report(log: DecisionLog) -> std::io::Result<()> {
    let listener = TcpListener::bind(REPORT_ADDRESS).await?;
    loop {
        let (mut stream, _) = listener.accept().await?;
        let lines = serde_json::to_string(&log.report()).expect("a report serialises") + "\n";
        tokio::spawn(async move {
            let _ = stream.write_all(lines.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}
