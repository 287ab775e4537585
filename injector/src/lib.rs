//! The injector owns everything that touches a target host: transports (SSH, local), the fault
//! catalog (preflight, inject, verify, revert, verify-reverted for each fault kind), and the journal
//! that guarantees every fault is reverted.
//!
//! Data comes in as validated fault specifications from the `scenarios` crate and goes out as
//! journal records that the runner and the reports read back.
#![warn(missing_docs)]
