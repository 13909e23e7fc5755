//! How bulwark itself is watched: [`metrics`] (a Prometheus textfile for node_exporter,
//! derived from the journal) and [`ping`] (dead-man's switch pings, healthchecks.io style).
//! Linked by the drift scanner and the sidecar; never by the hook.
#![forbid(unsafe_code)]

pub mod metrics;
pub mod ping;
