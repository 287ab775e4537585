//! A PostgreSQL database of its own for one test on the local server (127.0.0.1:5432, trust
//! auth; `scripts/setup` starts it), dropped with any connection left when it goes. Included by
//! the history crate's tests and the binary's (`tests/history.rs`) with `#[path]`.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

/// The local server, as the `postgres` role.
pub const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

/// A database named after the process and a counter.
pub struct Database {
    /// The database's name.
    pub name: String,
    /// Its URL.
    pub url: String,
}

impl Database {
    /// Creates the database (`prefix_PID_N`), replacing one left by a crashed run.
    pub fn new(prefix: &str) -> Database {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "{prefix}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let mut admin = postgres::Client::connect(&format!("{SERVER}/postgres"), postgres::NoTls)
            .expect("PostgreSQL on 127.0.0.1:5432 (run scripts/setup)");
        // One statement each: PostgreSQL runs a multi-statement batch as one transaction, and
        // CREATE DATABASE cannot run in one.
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        let url = format!("{SERVER}/{name}");
        Database { name, url }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Ok(mut admin) =
            postgres::Client::connect(&format!("{SERVER}/postgres"), postgres::NoTls)
        {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}
