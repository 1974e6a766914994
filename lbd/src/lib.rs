//! lbd, the load-balancer daemon of the appliance.
//!
//! The binary (`main.rs`) only parses its command line and calls in here; the
//! configuration checker is a library so the GUI validates with the same code.

pub mod cli;
pub mod config;
pub mod runtime;
pub mod tls;
