//! The end-to-end canary of a chat service (`[e2e]`): open-loop posts and reads over HTTP, a steady
//! population of WebSocket subscribers, each message correlated by an id registered before its post
//! is sent ([`ledger`]); the database read back by primary key and the ingest queue watched.

pub mod ledger;
