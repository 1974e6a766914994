//! webui: the appliance's browser GUI. `main.rs` parses the flags and calls
//! [`server::run`]; everything else is here, testable without a process.

pub mod app;
pub mod auth;
pub mod backup;
pub mod certs;
pub mod config;
pub mod deploy;
pub mod files;
pub mod server;
pub mod store;
pub mod views;
