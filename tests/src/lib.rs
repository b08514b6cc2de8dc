//! Test harness; see tests/.
