//! The connectors, end to end: local fakes of each vendor's API, shaped as
//! the vendor documents it, and tests that drive a real `custody serve`.

mod chat_emergency;
pub mod fake_servicenow;
pub(crate) mod jira;
pub mod jira_fake;
mod servicenow;
mod slack;
pub mod slack_fake;
mod teams;
