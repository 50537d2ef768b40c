//! Why a command failed, and the exit code each failure means: `1` for a
//! refusal (the server's, or a proof or download this command rejects
//! itself), `2` for everything else (usage, files, the ledger, the server
//! unreachable or failing), as the brief fixes them.

use custody_client::ClientError;
use custody_verify::VerifyError;

/// Why a command failed.
#[derive(Debug)]
pub enum CliError {
    /// Talking to the server failed; a refusal by the server exits 1.
    Client(ClientError),
    /// Refused by this command itself, with a problem document in the
    /// server's shape (a checkpoint not signed by the given key, downloaded
    /// evidence that does not hash to what was asked): exit 1.
    Refused(Box<custody_api::Problem>),
    /// Bad usage or bad input: exit 2.
    Usage(String),
    /// A local file could not be read or written: exit 2.
    Io(String),
    /// The ledger (a data directory or a database) could not be opened,
    /// initialised or read: exit 2.
    Ledger(String),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Client(error) if error.is_refusal() => 1,
            CliError::Refused(_) => 1,
            CliError::Client(_) | CliError::Usage(_) | CliError::Io(_) | CliError::Ledger(_) => 2,
        }
    }

    /// A refusal made by this command, shown as the server's are.
    pub fn refused(detail: String, rule: Option<&str>, hint: Option<&str>) -> CliError {
        CliError::Refused(Box::new(custody_api::Problem {
            rule: rule.map(str::to_string),
            hint: hint.map(str::to_string),
            ..custody_api::Problem::detail(detail)
        }))
    }
}

impl From<ClientError> for CliError {
    fn from(error: ClientError) -> CliError {
        CliError::Client(error)
    }
}

impl From<VerifyError> for CliError {
    fn from(error: VerifyError) -> CliError {
        let message = error.to_string();
        if error.is_database() {
            CliError::Ledger(message)
        } else if error.is_io() {
            CliError::Io(message)
        } else {
            CliError::Usage(message)
        }
    }
}
