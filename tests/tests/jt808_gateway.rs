//! The JT/T 808 gateway end to end, driven by a terminal written in this
//! suite from the standard (`jt808/terminal.rs`, no code shared with the
//! gateway), against the real ingest, the stack's broker, the sink,
//! ClickHouse and the query service.

#[path = "jt808/harness.rs"]
mod harness;
#[path = "jt808/pipeline.rs"]
mod pipeline;
#[path = "jt808/robustness.rs"]
mod robustness;
#[path = "jt808/simulator.rs"]
mod simulator;
#[path = "jt808/terminal.rs"]
mod terminal;
