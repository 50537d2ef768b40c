//! The connectors, end to end: local fakes of each vendor's API, shaped as
//! the vendor documents it, and tests that drive a real `custody serve`.

mod chat_emergency;
pub(crate) mod jira;
pub mod jira_fake;
mod slack;
pub mod slack_fake;
