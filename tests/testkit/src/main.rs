//! `testkit`: run the test emulations as standalone servers (issue 3).

fn main() {
    eprintln!("testkit: no subcommands yet");
    std::process::exit(2);
}
