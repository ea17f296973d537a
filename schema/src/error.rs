//! Error kinds carried in `error.data.kind` and their stable JSON-RPC codes (API.md, "Errors").

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What went wrong, in containerd's vocabulary. The code of each kind is part of the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    InvalidArgument,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    Unavailable,
    PermissionDenied,
    ResourceExhausted,
    Internal,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 8] = [
        ErrorKind::InvalidArgument,
        ErrorKind::NotFound,
        ErrorKind::AlreadyExists,
        ErrorKind::FailedPrecondition,
        ErrorKind::Unavailable,
        ErrorKind::PermissionDenied,
        ErrorKind::ResourceExhausted,
        ErrorKind::Internal,
    ];

    /// The JSON-RPC error code for this kind.
    pub fn code(self) -> i32 {
        match self {
            ErrorKind::InvalidArgument => -32602,
            ErrorKind::NotFound => -32001,
            ErrorKind::AlreadyExists => -32002,
            ErrorKind::FailedPrecondition => -32003,
            ErrorKind::Unavailable => -32004,
            ErrorKind::PermissionDenied => -32005,
            ErrorKind::ResourceExhausted => -32006,
            ErrorKind::Internal => -32603,
        }
    }

    /// The kind's wire name, as in `data.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::FailedPrecondition => "failed_precondition",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::ResourceExhausted => "resource_exhausted",
            ErrorKind::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_serialize_to_their_wire_names_and_codes() {
        let all = [
            (ErrorKind::InvalidArgument, -32602),
            (ErrorKind::NotFound, -32001),
            (ErrorKind::AlreadyExists, -32002),
            (ErrorKind::FailedPrecondition, -32003),
            (ErrorKind::Unavailable, -32004),
            (ErrorKind::PermissionDenied, -32005),
            (ErrorKind::ResourceExhausted, -32006),
            (ErrorKind::Internal, -32603),
        ];
        for (kind, code) in all {
            assert_eq!(kind.code(), code);
            let json = serde_json::to_value(kind).expect("serialize");
            assert_eq!(json, serde_json::Value::String(kind.as_str().to_owned()));
        }
    }
}
