//! The `heal8s` binary: a shim over the library.

// many small, short-lived allocations from many threads (every webhook's
// alerts): the system allocator was a third of the time under load
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    receiver::cli::main()
}
