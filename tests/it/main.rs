//! Integration tests: one binary (link once), one module per area.
//!
//! `cli` and `http` need no server. `stack` talks to the real Cassandra and Redis that
//! `scripts/stack.sh up` starts; those tests fail (they never skip) when the stack is down.

mod common;

mod check;
mod cli;
mod e2e;
mod faults;
mod http;
mod probes;
mod reload;
mod scaleout;
mod security;
mod stack;
mod status;
mod traffic;
mod truth;
