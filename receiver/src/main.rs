//! The `heal8s` binary: a shim over the library.

fn main() -> std::process::ExitCode {
    receiver::cli::main()
}
