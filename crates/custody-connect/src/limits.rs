//! Size limits, checked before any MAC is computed.

use crate::Refusal;

/// The default largest inbound body: webhooks from every supported source
/// fit well under it, and a larger body is refused before its MAC is
/// computed, so a flood of large bodies costs no hashing.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;

/// Refuses a body over `limit` bytes.
pub fn check_size(size: usize, limit: usize) -> Result<(), Refusal> {
    if size > limit {
        return Err(Refusal::TooLarge { size, limit });
    }
    Ok(())
}
