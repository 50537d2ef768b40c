//! The connectors end to end: a real `custody serve` with `[[connectors]]`,
//! driven by each vendor's messages and writing back to a local fake of
//! its API.

mod fake_servicenow;
mod servicenow;
mod teams;
