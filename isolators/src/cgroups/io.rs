//! The io controller: a proportional weight.

use std::path::Path;

use super::{CgroupError, write};

/// Sets io.weight (1..=10000, 100 is the default share).
pub fn apply(dir: &Path, weight: u16) -> Result<(), CgroupError> {
    if !(1..=10_000).contains(&weight) {
        return Err(CgroupError::Invalid(format!(
            "io weight {weight}: must be 1 to 10000"
        )));
    }
    write(&dir.join("io.weight"), &format!("default {weight}"))
}
