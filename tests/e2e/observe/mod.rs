//! The sources of observed changes, end to end (docs/observations.md).

mod cloudtrail;
