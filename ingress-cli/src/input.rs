//! Reading PATH arguments: files, folders (recursed), `-` for stdin (shared with the
//! proxy through `ingress-files`).

pub(crate) use ingress_files::{Input, read};
