//! The `butterfly` binary: everything lives in the `butterfly` library and the workspace crates.

fn main() -> std::process::ExitCode {
    butterfly::cli::main()
}
