//! Sources of observed changes end to end: local fakes of each vendor's
//! API, shaped as the vendor documents it, and tests that drive a real
//! `custody serve`.

mod entra;
pub mod fake_okta;
mod okta;
