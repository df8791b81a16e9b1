//! The webhook process the HTTP tests talk to: spawned, reached by a client, killed on drop.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::Child;

/// A running `provenance-webhook` and a client for it.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub client: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
