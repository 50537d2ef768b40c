//! Sources of observed changes end to end: records shaped as each vendor
//! documents them, pushed, polled from local fakes of the vendors' APIs or
//! ingested from files, driving a real `custody serve`.

mod cloudtrail;
mod entra;
pub mod fake_okta;
mod github;
mod github_fake;
mod kubernetes;
mod observed;
mod okta;
mod vault;
